/* wisp-bench-openmp - OpenMP tasking peer for wisp's benchmark suite.
 *
 * Runs wisp's benchmark workloads (bench/wisp_bench.c) as OpenMP tasks and
 * prints exactly one line per repetition, in the same format as wisp's C
 * driver:
 *
 *   bench=WORKLOAD impl=openmp threads=N n=COUNT seconds=S ns_per_op=X
 *
 * usage: wisp-bench-openmp WORKLOAD [--threads N] [--n COUNT] [--reps R]
 *
 * Shape: one parallel region of exactly N threads for the whole process (the
 * pool); one of them, inside "omp single", drives the repetitions: it creates
 * the root task(s) and waits at the end of a taskgroup, executing tasks
 * meanwhile like the other N - 1 threads.  OpenMP has no thread outside the
 * team that could submit work, so that thread is the team's own.
 *
 * Not applicable (print "skip openmp WORKLOAD: <reason>" on stderr, exit 3):
 *   spawn_many_remote  tasks can only be created by threads of the team;
 *   ping_pong, ping_pong_rounds, chan_mpsc, mutex_contended
 *                      OpenMP has no async tasks, wakers, channels or
 *                      mutexes (omp_set_lock blocks the thread);
 *   yield_many         with GCC's libgomp, "omp taskyield" is a no-op
 *                      (GOMP_taskyield just returns), so there is no yield to
 *                      measure.  Built with another OpenMP runtime (e.g.
 *                      clang's libomp), or with -DWISP_BENCH_FORCE_TASKYIELD,
 *                      the workload runs: n tasks x 1000 taskyields.
 *
 * Exit status: 0 on success, 1 if a workload produced a wrong result,
 * 2 on an unknown workload or bad arguments, 3 if the workload does not
 * apply to OpenMP. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#define YIELDS 1000
#define FIB_MAX_N 90 /* 2*fib(n+1)-1 still fits in a uint64_t */

/* GCC's OpenMP runtime (libgomp) implements taskyield as an empty function. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__INTEL_COMPILER) && \
    !defined(__INTEL_LLVM_COMPILER) && !defined(WISP_BENCH_FORCE_TASKYIELD)
#define TASKYIELD_IS_NOOP 1
#else
#define TASKYIELD_IS_NOOP 0
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Noreturn void fail(const char *bench, const char *what, long got, long want)
{
    fprintf(stderr, "wisp-bench-openmp: %s: verification failed: %s is %ld, expected %ld\n", bench,
            what, got, want);
    exit(1);
}

static void check_counter(const char *bench, atomic_long *left)
{
    long l = atomic_load(left);
    if (l != 0)
        fail(bench, "counter", l, 0);
}

/* ---- 1. spawn_many_local: one task spawns n empty tasks -------------------- */

static double bench_spawn_many_local(long n, long *ops)
{
    *ops = n;
    atomic_long left;
    atomic_init(&left, n);
    atomic_long *c = &left;
    double t0 = now();
#pragma omp taskgroup
    {
#pragma omp task firstprivate(c, n)
        for (long i = 0; i < n; i++) {
#pragma omp task firstprivate(c)
            atomic_fetch_sub_explicit(c, 1, memory_order_acq_rel);
        }
    } /* end of taskgroup: the root and all its descendants have run */
    double t = now() - t0;
    check_counter("spawn_many_local", &left);
    return t;
}

/* ---- 3. yield_many: n tasks x 1000 yields ---------------------------------- */

#if TASKYIELD_IS_NOOP
__attribute__((unused)) /* compiled, but not run on libgomp */
#endif
static double bench_yield_many(long n, long *ops)
{
    *ops = n * YIELDS;
    atomic_long left;
    atomic_init(&left, n);
    atomic_long *c = &left;
    double t0 = now();
#pragma omp taskgroup
    {
        for (long i = 0; i < n; i++) {
#pragma omp task firstprivate(c)
            {
                for (int y = 0; y < YIELDS; y++) {
#pragma omp taskyield
                }
                atomic_fetch_sub_explicit(c, 1, memory_order_acq_rel);
            }
        }
    }
    double t = now() - t0;
    check_counter("yield_many", &left);
    return t;
}

/* ---- 5. chained_spawn: each task spawns the next, n deep ------------------- */

/* Link k spawns link k - 1 as a new task and returns; there is no taskwait
 * per level (the enclosing taskgroup waits once for the whole chain), so the
 * chain never nests on the stack.  Link 1, the n-th, records that it ran. */
static void chain_link(atomic_long *last, long k)
{
    if (k <= 1) {
        atomic_store_explicit(last, k, memory_order_release);
        return;
    }
#pragma omp task firstprivate(last, k)
    chain_link(last, k - 1);
}

static double bench_chained_spawn(long n, long *ops)
{
    *ops = n;
    atomic_long last;
    atomic_init(&last, 0);
    atomic_long *l = &last;
    double t0 = now();
#pragma omp taskgroup
    {
#pragma omp task firstprivate(l, n)
        chain_link(l, n);
    }
    double t = now() - t0;
    long got = atomic_load_explicit(&last, memory_order_acquire);
    if (got != 1)
        fail("chained_spawn", "last link", got, 1);
    return t;
}

/* ---- 6. fib: every call forks both children and joins both ----------------- */

static uint64_t fib(long n)
{
    if (n < 2)
        return (uint64_t)n;
    uint64_t a, b;
#pragma omp task shared(a) firstprivate(n)
    a = fib(n - 1);
#pragma omp task shared(b) firstprivate(n)
    b = fib(n - 2);
#pragma omp taskwait
    return a + b;
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

static double bench_fib(long n, long *ops)
{
    uint64_t calls;
    uint64_t want = fib_expected(n, &calls);
    *ops = (long)calls;
    uint64_t got = 0;
    double t0 = now();
    /* the root call is a task too, as in wisp */
#pragma omp task shared(got) firstprivate(n)
    got = fib(n);
#pragma omp taskwait
    double t = now() - t0;
    if (got != want) {
        fprintf(stderr, "wisp-bench-openmp: fib(%ld) = %llu, want %llu\n", n,
                (unsigned long long)got, (unsigned long long)want);
        exit(1);
    }
    return t;
}

/* ---- driver ---------------------------------------------------------------- */

struct workload {
    const char *name;
    long default_n;
    double (*run)(long n, long *ops);
    const char *skip; /* why OpenMP cannot run it, when run is NULL */
};

static const struct workload workloads[] = {
    { "spawn_many_local", 1000000, bench_spawn_many_local, NULL },
    { "spawn_many_remote", 1000000, NULL,
      "OpenMP tasks can only be created by threads of the team; no outside thread can submit" },
#if TASKYIELD_IS_NOOP
    { "yield_many", 200, NULL, "libgomp implements 'omp taskyield' as a no-op, so nothing yields" },
#else
    { "yield_many", 200, bench_yield_many, NULL },
#endif
    { "ping_pong", 200000, NULL, "OpenMP has no async tasks or wakers to bounce between" },
    { "ping_pong_rounds", 100000, NULL, "OpenMP has no async tasks or channels to bounce a value over" },
    { "chan_mpsc", 1000000, NULL, "OpenMP has no async channel: a task cannot wait for a message without blocking its thread" },
    { "mutex_contended", 1000000, NULL, "OpenMP has no async mutex: omp_set_lock blocks the thread" },
    { "chained_spawn", 1000000, bench_chained_spawn, NULL },
    { "fib", 30, bench_fib, NULL },
};

#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

static _Noreturn void usage(const char *msg)
{
    fprintf(stderr, "wisp-bench-openmp: %s\n", msg);
    fprintf(stderr, "usage: wisp-bench-openmp WORKLOAD [--threads N] [--n COUNT] [--reps R]\n"
                    "workloads:");
    for (size_t i = 0; i < NWORKLOADS; i++)
        fprintf(stderr, " %s", workloads[i].name);
    fprintf(stderr, "\n");
    exit(2);
}

static long parse_positive(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: expected a positive integer, got '%s'", opt, s);
        usage(msg);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage("missing WORKLOAD");
    const struct workload *wl = NULL;
    for (size_t i = 0; i < NWORKLOADS; i++)
        if (!strcmp(argv[1], workloads[i].name))
            wl = &workloads[i];
    char msg[160];
    if (!wl) {
        snprintf(msg, sizeof msg, "unknown workload '%s'", argv[1]);
        usage(msg);
    }
    long threads = 2, n = wl->default_n, reps = 1;
    for (int i = 2; i < argc; i++) {
        /* Accept both "--opt VALUE" and "--opt=VALUE". */
        const char *arg = argv[i], *value;
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            snprintf(msg, sizeof msg, "%s needs a value", arg);
            usage(msg);
        }
        if (len == 9 && !strncmp(arg, "--threads", len))
            threads = parse_positive("--threads", value);
        else if (len == 3 && !strncmp(arg, "--n", len))
            n = parse_positive("--n", value);
        else if (len == 6 && !strncmp(arg, "--reps", len))
            reps = parse_positive("--reps", value);
        else {
            snprintf(msg, sizeof msg, "unknown argument '%.*s'", (int)len, arg);
            usage(msg);
        }
    }
    if (!strcmp(wl->name, "fib") && n > FIB_MAX_N)
        usage("fib: --n must be at most 90");
    if (!strcmp(wl->name, "yield_many") && n > LONG_MAX / YIELDS)
        usage("yield_many: --n is too large");
    if (threads > 4096)
        usage("--threads is too large");
    if (!wl->run) {
        fprintf(stderr, "skip openmp %s: %s\n", wl->name, wl->skip);
        return 3;
    }

    /* One team of exactly N threads for the whole process. */
    omp_set_dynamic(0);
    omp_set_num_threads((int)threads);
    int team = 0;
#pragma omp parallel num_threads((int)threads)
    {
#pragma omp single
        {
            team = omp_get_num_threads();
            if (team == threads) {
                for (long r = 0; r < reps; r++) {
                    long ops;
                    double s = wl->run(n, &ops);
                    printf("bench=%s impl=openmp threads=%ld n=%ld seconds=%.6f ns_per_op=%.1f\n",
                           wl->name, threads, n, s, s * 1e9 / (double)ops);
                    fflush(stdout);
                }
            }
        }
    }
    if (team != threads) {
        fprintf(stderr, "wisp-bench-openmp: got a team of %d threads, asked for %ld\n", team,
                threads);
        return 1;
    }
    return 0;
}
