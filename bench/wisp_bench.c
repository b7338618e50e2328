/* wisp-bench - wisp's scheduler benchmarks, shaped as Tokio's
 * benches/rt_multi_threaded.rs, one line per run:
 *
 *   bench=WORKLOAD impl=wisp threads=N n=COUNT seconds=S ns_per_op=X
 *
 * usage: wisp-bench WORKLOAD [--threads N] [--n COUNT] [--reps R]
 *        wisp-bench list
 *
 * Two more runs measure resources rather than time: idle_cpu (n seconds of
 * an idle runtime: cpu_ms_per_s) and task_memory (n pending tasks with a
 * empty future: heap bytes per task, all runtime overhead).  The I/O and
 * timer workloads (socket_ping_pong, file_read, timer_fire, timer_cancel,
 * idle_timers) are in io_bench.c; those of the sync primitives (ping_pong,
 * ping_pong_rounds, chan_mpsc, mutex_contended) in sync_bench.c.
 * The same workloads exist for Tokio in bench/peers/tokio, written the same
 * way, so the two can be compared line by line. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <wisp/wisp.h>

#include "bench.h"
#include "sync_bench.h"

/* task_memory reads the statistics of the allocator wisp uses. */
#if WISP_JEMALLOC
#include <jemalloc/jemalloc.h>
#else
#include <malloc.h>
#endif

struct empty_task {
    struct countdown *c;
};

static wisp_poll_t empty_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    countdown_hit(((struct empty_task *)f)->c);
    return WISP_READY;
}

/* ---- spawn_many_local / spawn_many_remote --------------------------------- */

struct spawner {
    wisp_runtime_t *rt;
    struct countdown *c;
    long n;
};

static void spawn_empties(wisp_runtime_t *rt, struct countdown *c, long n)
{
    struct empty_task e = { c };
    for (long i = 0; i < n; i++) {
        int err = wisp_spawn(rt, empty_poll, &e, sizeof(e), NULL, NULL);
        if (err)
            die("spawn", err);
    }
}

static wisp_poll_t spawner_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct spawner *s = f;
    spawn_empties(s->rt, s->c, s->n);
    return WISP_READY;
}

static double run_spawn_many(wisp_runtime_t *rt, long n, int local)
{
    struct countdown c;
    atomic_init(&c.left, n);
    latch_init(&c.latch);
    double t0 = now();
    if (local) {
        struct spawner s = { rt, &c, n };
        int err = wisp_spawn(rt, spawner_poll, &s, sizeof(s), NULL, NULL);
        if (err)
            die("spawn", err);
    } else {
        spawn_empties(rt, &c, n);
    }
    latch_wait(&c.latch);
    double t = now() - t0;
    latch_destroy(&c.latch);
    return t;
}

static double bench_spawn_many_local(wisp_runtime_t *rt, long n, long *ops)
{
    *ops = n;
    return run_spawn_many(rt, n, 1);
}

static double bench_spawn_many_remote(wisp_runtime_t *rt, long n, long *ops)
{
    *ops = n;
    return run_spawn_many(rt, n, 0);
}

/* ---- yield_many: n tasks x 1000 yields ------------------------------------ */

#define YIELDS 1000

struct yielder {
    struct countdown *c;
    int left;
};

static wisp_poll_t yielder_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct yielder *y = f;
    if (y->left-- > 0)
        return wisp_yield(cx);
    countdown_hit(y->c);
    return WISP_READY;
}

static double bench_yield_many(wisp_runtime_t *rt, long n, long *ops)
{
    *ops = n * YIELDS;
    struct countdown c;
    atomic_init(&c.left, n);
    latch_init(&c.latch);
    double t0 = now();
    struct yielder y = { &c, YIELDS };
    for (long i = 0; i < n; i++) {
        int err = wisp_spawn(rt, yielder_poll, &y, sizeof(y), NULL, NULL);
        if (err)
            die("spawn", err);
    }
    latch_wait(&c.latch);
    double t = now() - t0;
    latch_destroy(&c.latch);
    return t;
}

/* ---- chained_spawn: each task spawns the next, n deep --------------------- */

struct link {
    wisp_runtime_t *rt;
    struct latch *latch;
    long left;
};

static wisp_poll_t link_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct link *l = f;
    if (l->left <= 1) {
        latch_set(l->latch);
        return WISP_READY;
    }
    struct link next = { l->rt, l->latch, l->left - 1 };
    int err = wisp_spawn(l->rt, link_poll, &next, sizeof(next), NULL, NULL);
    if (err)
        die("spawn", err);
    return WISP_READY;
}

static double bench_chained_spawn(wisp_runtime_t *rt, long n, long *ops)
{
    *ops = n;
    struct latch latch;
    latch_init(&latch);
    double t0 = now();
    struct link first = { rt, &latch, n };
    int err = wisp_spawn(rt, link_poll, &first, sizeof(first), NULL, NULL);
    if (err)
        die("spawn", err);
    latch_wait(&latch);
    double t = now() - t0;
    latch_destroy(&latch);
    return t;
}

/* ---- fib: every call spawns both children and awaits both ---------------- */

struct fib {
    wisp_runtime_t *rt;
    long n;
    int phase;
    uintptr_t a;
    wisp_join_t *ja, *jb;
};

static wisp_poll_t fib_poll(void *f, wisp_context_t *cx, void **out)
{
    struct fib *fb = f;
    int status;
    void *v;
    switch (fb->phase) {
    case 0: {
        if (fb->n < 2) {
            *out = (void *)(uintptr_t)fb->n;
            return WISP_READY;
        }
        struct fib a = { fb->rt, fb->n - 1, 0, 0, NULL, NULL };
        struct fib b = { fb->rt, fb->n - 2, 0, 0, NULL, NULL };
        int err = wisp_spawn(fb->rt, fib_poll, &a, sizeof(a), NULL, &fb->ja);
        if (!err)
            err = wisp_spawn(fb->rt, fib_poll, &b, sizeof(b), NULL, &fb->jb);
        if (err)
            die("spawn", err);
        fb->phase = 1;
    } /* fall through */
    case 1:
        if (wisp_join_poll(fb->ja, cx, &status, &v) == WISP_PENDING)
            return WISP_PENDING;
        if (status)
            die("join", status);
        fb->a = (uintptr_t)v;
        fb->phase = 2;
        /* fall through */
    default:
        if (wisp_join_poll(fb->jb, cx, &status, &v) == WISP_PENDING)
            return WISP_PENDING;
        if (status)
            die("join", status);
        *out = (void *)(fb->a + (uintptr_t)v);
        return WISP_READY;
    }
}

static uint64_t fib_expected(long n, uint64_t *calls)
{
    uint64_t a = 0, b = 1; /* fib(i), fib(i+1) */
    for (long i = 0; i < n; i++) {
        uint64_t c = a + b;
        a = b;
        b = c;
    }
    *calls = 2 * b - 1; /* calls(n) = 2 fib(n+1) - 1 */
    return a;
}

static double bench_fib(wisp_runtime_t *rt, long n, long *ops)
{
    uint64_t calls;
    uint64_t want = fib_expected(n, &calls);
    *ops = (long)calls;
    struct fib root = { rt, n, 0, 0, NULL, NULL };
    wisp_join_t *j;
    double t0 = now();
    int err = wisp_spawn(rt, fib_poll, &root, sizeof(root), NULL, &j);
    if (err)
        die("spawn", err);
    void *v;
    err = wisp_join(j, &v);
    double t = now() - t0;
    if (err)
        die("join", err);
    if ((uint64_t)(uintptr_t)v != want) {
        fprintf(stderr, "wisp-bench: fib(%ld) = %lu, want %lu\n", n, (unsigned long)(uintptr_t)v,
                (unsigned long)want);
        exit(1);
    }
    return t;
}

/* ---- idle_cpu: CPU an idle runtime burns, per second of wall time --------- */

double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* n: how many seconds to stay idle.  A short burst of work first, so the
 * workers go idle from running rather than from start-up. */
static double bench_idle_cpu(wisp_runtime_t *rt, long n, long *ops, double *extra)
{
    *ops = 1;
    run_spawn_many(rt, 10000, 0);
    usleep(100000); /* settle: searching workers park */
    double c0 = cpu_seconds(), t0 = now();
    sleep((unsigned)n);
    double cpu = cpu_seconds() - c0, t = now() - t0;
    *extra = cpu * 1e3 / t; /* ms of CPU per second */
    return t;
}

/* ---- task_memory: heap bytes per pending empty task ------------------------ */

static size_t heap_allocated(void)
{
#if WISP_JEMALLOC
    uint64_t epoch = 1;
    size_t sz = sizeof(epoch);
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    size_t allocated = 0;
    sz = sizeof(allocated);
    if (mallctl("stats.allocated", &allocated, &sz, NULL, 0) != 0)
        return 0;
    return allocated;
#else
    return mallinfo2().uordblks;
#endif
}

static _Atomic long parked_polls;

/* An empty future, pending forever with no waker kept: the runtime holds the
 * task (idle, listed for shutdown) until it is freed. */
static wisp_poll_t parked_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)f;
    (void)cx;
    (void)out;
    atomic_fetch_add_explicit(&parked_polls, 1, memory_order_relaxed);
    return WISP_PENDING;
}

/* n idle empty tasks: heap bytes per task, all of it runtime overhead. */
static double bench_task_memory(wisp_runtime_t *rt, long n, long *ops, double *extra)
{
    *ops = n;
    atomic_store(&parked_polls, 0);
    size_t before = heap_allocated();
    double t0 = now();
    for (long i = 0; i < n; i++) {
        int err = wisp_spawn(rt, parked_poll, NULL, 0, NULL, NULL);
        if (err)
            die("spawn", err);
    }
    while (atomic_load(&parked_polls) < n)
        usleep(1000);
    double t = now() - t0;
    size_t after = heap_allocated();
    *extra = ((double)after - (double)before) / (double)n;
    return t;
}

/* ---- --metrics: a table of the runtime's counters ----------------------- */

static void print_metrics(wisp_runtime_t *rt)
{
    unsigned n = wisp_runtime_workers(rt);
    wisp_worker_metrics_t *per = calloc(n, sizeof(*per));
    wisp_runtime_metrics_t m = { .size = sizeof(m), .per_worker = per, .per_worker_len = n };
    int err = wisp_runtime_metrics(rt, &m);
    if (err == -ENOTSUP)
        skip("built without metrics (WISP_METRICS=OFF)");
    if (err) {
        fprintf(stderr, "wisp-bench: metrics: %s\n", strerror(-err));
        free(per);
        return;
    }
    printf("metrics: live_tasks=%lu injector_depth=%lu remote_spawns=%lu remote_wakes=%lu "
           "remote_cancelled=%lu\n",
           (unsigned long)m.live_tasks, (unsigned long)m.injector_depth,
           (unsigned long)m.remote_spawns, (unsigned long)m.remote_wakes,
           (unsigned long)m.remote_cancelled);
    printf("metrics: %-7s %10s %10s %10s %9s %8s %8s %10s %9s %7s %7s %9s %10s\n", "worker",
           "polls", "spawns", "wakes", "steal_try", "steals", "stolen", "inj_pops", "overflow",
           "parks", "unparks", "busy_ms", "completed");
    for (unsigned i = 0; i <= n; i++) {
        wisp_worker_metrics_t *w = i < n ? &per[i] : &m.total;
        char name[16];
        snprintf(name, sizeof(name), i < n ? "%u" : "total", i);
        printf("metrics: %-7s %10lu %10lu %10lu %9lu %8lu %8lu %10lu %9lu %7lu %7lu %9.1f %10lu\n",
               name, (unsigned long)w->polls, (unsigned long)w->spawns, (unsigned long)w->wakes,
               (unsigned long)w->steal_attempts, (unsigned long)w->steals,
               (unsigned long)w->tasks_stolen, (unsigned long)w->injector_pops,
               (unsigned long)w->overflows, (unsigned long)w->parks, (unsigned long)w->unparks,
               (double)w->busy_ns / 1e6, (unsigned long)w->completed);
    }
    free(per);
}

/* ---- driver ---------------------------------------------------------------- */

struct workload {
    const char *name;
    long default_n;
    double (*run)(wisp_runtime_t *rt, long n, long *ops);
    /* the two resource figures print their own metric instead of ns_per_op */
    double (*measure)(wisp_runtime_t *rt, long n, long *ops, double *extra);
    const char *metric;
};

static const struct workload workloads[] = {
    { "spawn_many_local", 1000000, bench_spawn_many_local, NULL, NULL },
    { "spawn_many_remote", 1000000, bench_spawn_many_remote, NULL, NULL },
    { "yield_many", 200, bench_yield_many, NULL, NULL },
    { "ping_pong", 200000, bench_ping_pong, NULL, NULL },
    { "ping_pong_rounds", 100000, bench_ping_pong_rounds, NULL, NULL },
    { "chan_mpsc", 1000000, bench_chan_mpsc, NULL, NULL },
    { "mutex_contended", 1000000, bench_mutex_contended, NULL, NULL },
    { "chained_spawn", 1000000, bench_chained_spawn, NULL, NULL },
    { "fib", 30, bench_fib, NULL, NULL },
    { "idle_cpu", 2, NULL, bench_idle_cpu, "cpu_ms_per_s" },
    { "task_memory", 1000000, NULL, bench_task_memory, "overhead_bytes_per_task" },
    { "socket_ping_pong", 100000, bench_socket_ping_pong, NULL, NULL },
    { "file_read", 200000, bench_file_read, NULL, NULL },
    { "timer_fire", 1000000, bench_timer_fire, NULL, NULL },
    { "timer_cancel", 1000000, bench_timer_cancel, NULL, NULL },
    { "idle_timers", 10000, NULL, bench_idle_timers, "cpu_ms_per_s" },
    { "ring_wake", 2000, bench_ring_wake, NULL, NULL },
    { "park_wake", 2000, bench_park_wake, NULL, NULL },
};

static void usage(void)
{
    fprintf(stderr, "usage: wisp-bench WORKLOAD [--threads N] [--n COUNT] [--reps R]\n"
                    "                           [--metrics] [--trace PATH]\n"
                    "       wisp-bench list\n"
                    "  --metrics     print the runtime's metrics after the runs\n"
                    "  --trace PATH  record a scheduler trace (Chrome Trace JSON) to PATH\n"
                    "workloads:");
    for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
        fprintf(stderr, " %s", workloads[i].name);
    fprintf(stderr, "\n");
    exit(2);
}

static long parse_positive(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v <= 0)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (!strcmp(argv[1], "list")) {
        for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
            printf("%s\n", workloads[i].name);
        return 0;
    }
    const struct workload *wl = NULL;
    for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
        if (!strcmp(argv[1], workloads[i].name))
            wl = &workloads[i];
    if (!wl)
        usage();
    long threads = 2, n = wl->default_n, reps = 1;
    int want_metrics = 0;
    const char *trace_path = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--metrics")) {
            want_metrics = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--trace"))
            trace_path = argv[++i];
        else if (!strcmp(argv[i], "--threads"))
            threads = parse_positive(argv[++i]);
        else if (!strcmp(argv[i], "--n"))
            n = parse_positive(argv[++i]);
        else if (!strcmp(argv[i], "--reps"))
            reps = parse_positive(argv[++i]);
        else
            usage();
    }
    if (!strcmp(wl->name, "fib") && n > 60)
        usage();
    wisp_runtime_t *rt;
    wisp_runtime_config_t cfg = { .workers = (unsigned)threads };
    int err = wisp_runtime_new(&rt, &cfg);
    if (err == -ENOSYS)
        skip("the I/O backend asked for (WISP_IO) cannot be set up here");
    if (err)
        die("runtime", err);
    if (trace_path && (err = wisp_trace_start(rt, 0)) == -ENOTSUP)
        skip("built without tracing (WISP_TRACING=OFF)");
    if (trace_path && err)
        die("trace", err);
    for (long r = 0; r < reps; r++) {
        long ops;
        if (wl->measure) {
            double extra;
            double s = wl->measure(rt, n, &ops, &extra);
            printf("bench=%s impl=wisp threads=%ld n=%ld seconds=%.6f %s=%.1f\n", wl->name,
                   threads, n, s, wl->metric, extra);
        } else {
            double s = wl->run(rt, n, &ops);
            printf("bench=%s impl=wisp threads=%ld n=%ld seconds=%.6f ns_per_op=%.1f\n", wl->name,
                   threads, n, s, s * 1e9 / (double)ops);
        }
        fflush(stdout);
    }
    if (trace_path && (err = wisp_trace_write(rt, trace_path)))
        die("trace", err);
    if (want_metrics)
        print_metrics(rt);
    err = wisp_runtime_free(rt);
    if (err)
        die("runtime_free", err);
    return 0;
}
