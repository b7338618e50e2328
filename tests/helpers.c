/* helpers.c - see helpers.h. */
#include "helpers.h"

#include <dirent.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

long stress(long n)
{
    const char *d = getenv("WISP_STRESS");
    long div = d ? atol(d) : 1;
    if (div < 1)
        div = 1;
    long r = n / div;
    return r > 0 ? r : 1;
}

wisp_runtime_t *rt_new(unsigned workers)
{
    wisp_runtime_t *rt = NULL;
    wisp_runtime_config_t cfg = { .workers = workers };
    ck_assert_int_eq(wisp_runtime_new(&rt, &cfg), 0);
    ck_assert_ptr_nonnull(rt);
    return rt;
}

static wisp_waker_t cw_clone(const void *d);
static void cw_wake(const void *d)
{
    struct counting_waker *c = (struct counting_waker *)d;
    atomic_fetch_add(&c->wakes, 1);
    atomic_fetch_sub(&c->refs, 1);
}
static void cw_wake_by_ref(const void *d)
{
    atomic_fetch_add(&((struct counting_waker *)d)->wakes, 1);
}
static void cw_drop(const void *d)
{
    atomic_fetch_sub(&((struct counting_waker *)d)->refs, 1);
}
static const wisp_waker_vtable_t cw_vtable = { cw_clone, cw_wake, cw_wake_by_ref, cw_drop };
static wisp_waker_t cw_clone(const void *d)
{
    atomic_fetch_add(&((struct counting_waker *)d)->refs, 1);
    return (wisp_waker_t){ d, &cw_vtable };
}

wisp_waker_t counting_waker(struct counting_waker *c)
{
    return cw_clone(c);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

void wait_for(_Atomic long *flag, long want, double seconds)
{
    double end = now() + seconds;
    while (atomic_load(flag) != want) {
        if (now() > end)
            ck_abort_msg("timed out waiting: have %ld want %ld", atomic_load(flag), want);
        sched_yield();
    }
}

int run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int skip_suite(const char *why)
{
    printf("SKIP: %s\n", why);
    return 77;
}

void signal_init(struct signal *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->waker = WISP_WAKER_EMPTY;
}

void signal_raise(struct signal *s)
{
    pthread_mutex_lock(&s->lock);
    s->raised = 1;
    wisp_waker_t w = s->waker;
    s->waker = WISP_WAKER_EMPTY;
    pthread_mutex_unlock(&s->lock);
    wisp_waker_wake(&w);
}

void signal_destroy(struct signal *s)
{
    wisp_waker_drop(&s->waker);
    pthread_mutex_destroy(&s->lock);
}

wisp_poll_t signal_future_poll(void *f, wisp_context_t *cx, void **out)
{
    struct signal_future *sf = f;
    struct signal *s = sf->sig;
    if (atomic_fetch_add(&s->in_poll, 1) != 0)
        atomic_store(&s->overlapped, 1);
    atomic_fetch_add(&s->polls, 1);
    wisp_poll_t r = WISP_PENDING;
    pthread_mutex_lock(&s->lock);
    if (s->raised) {
        *out = sf->result;
        r = WISP_READY;
    } else {
        wisp_waker_set(&s->waker, wisp_context_waker(cx));
    }
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_sub(&s->in_poll, 1);
    return r;
}

void signal_future_drop(void *f)
{
    atomic_fetch_add(&((struct signal_future *)f)->sig->drops, 1);
}

int process_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

int threads_named(const char *suffix)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    size_t sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = { 0 };
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* the thread left meanwhile */
        if (fgets(comm, sizeof(comm), f)) {
            size_t cl = strcspn(comm, "\n");
            comm[cl] = 0;
            if (cl >= sl && strcmp(comm + cl - sl, suffix) == 0)
                n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

void fail_later(struct failure *f, const char *fmt, ...)
{
    if (atomic_fetch_add(&f->count, 1) != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
    va_end(ap);
}

void check_no_failure(struct failure *f)
{
    int n = atomic_load(&f->count);
    ck_assert_msg(n == 0, "%d failure(s) in worker threads, first: %s", n, f->msg);
}

/* ---- run_parents: remote parents each spawn two yielding children ------- */

struct child {
    int yields;
};

static wisp_poll_t child_poll(void *f, wisp_context_t *cx, void **out)
{
    struct child *c = f;
    if (c->yields-- > 0)
        return wisp_yield(cx);
    *out = NULL;
    return WISP_READY;
}

struct parent {
    wisp_runtime_t *rt;
    wisp_join_t *a, *b;
    int phase;
};

static wisp_poll_t parent_poll(void *f, wisp_context_t *cx, void **out)
{
    struct parent *p = f;
    int st;
    void *v;
    if (p->phase == 0) {
        struct child c = { 3 };
        ck_assert_int_eq(wisp_spawn(p->rt, child_poll, &c, sizeof(c), NULL, &p->a), 0);
        ck_assert_int_eq(wisp_spawn(p->rt, child_poll, &c, sizeof(c), NULL, &p->b), 0);
        p->phase = 1;
    }
    if (p->phase == 1) {
        if (wisp_join_poll(p->a, cx, &st, &v) == WISP_PENDING)
            return WISP_PENDING;
        p->phase = 2;
    }
    if (wisp_join_poll(p->b, cx, &st, &v) == WISP_PENDING)
        return WISP_PENDING;
    *out = NULL;
    return WISP_READY;
}

void run_parents(wisp_runtime_t *rt, int n)
{
    wisp_join_t **j = calloc((size_t)n, sizeof(*j));
    for (int i = 0; i < n; i++) {
        struct parent p = { rt, NULL, NULL, 0 };
        ck_assert_int_eq(wisp_spawn(rt, parent_poll, &p, sizeof(p), NULL, &j[i]), 0);
    }
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(wisp_join(j[i], NULL), 0);
    free(j);
}
