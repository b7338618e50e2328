// wisp-bench-tbb - oneTBB peer for wisp's benchmark suite.
//
// Runs wisp's benchmark workloads (bench/wisp_bench.c) on oneTBB and prints
// exactly one line per repetition, in the same format as wisp's C driver:
//
//   bench=WORKLOAD impl=tbb threads=N n=COUNT seconds=S ns_per_op=X
//
// usage: wisp-bench-tbb WORKLOAD [--threads N] [--n COUNT] [--reps R]
//
// Shape, the same as wisp's and Tokio's: a pool of exactly N worker threads
// and an outside main thread that submits the root work and sleeps on a
// latch until it is done.  In TBB terms: one task_arena with N slots, none
// reserved for external threads, and a global_control allowing N + 1 threads
// in all (TBB counts the main thread as one), so TBB runs N workers in the
// arena.  The main thread never joins the arena; it only enqueues into it.
// Root work that forks uses a task_group (run = spawn onto the current
// worker's deque, wait = help execute until the group is done).
//
// TBB is a fork-join task scheduler, not an async runtime: it has no yield,
// no wakers and no async channels or mutexes, so yield_many, ping_pong,
// ping_pong_rounds, chan_mpsc and mutex_contended print
// "skip tbb WORKLOAD: <reason>" on stderr and exit 3.
//
// Exit status: 0 on success, 1 if a workload produced a wrong result,
// 2 on an unknown workload or bad arguments, 3 if the workload does not
// apply to TBB.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cerrno>
#include <mutex>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

namespace {

const long FIB_MAX_N = 90; // 2*fib(n+1)-1 still fits in a uint64_t

// ---- a one-shot latch the outside thread waits on ---------------------------

class Latch {
public:
    void set()
    {
        std::lock_guard<std::mutex> g(lock_);
        done_ = true;
        cond_.notify_one();
    }

    void wait()
    {
        std::unique_lock<std::mutex> g(lock_);
        cond_.wait(g, [this] { return done_; });
    }

private:
    std::mutex lock_;
    std::condition_variable cond_;
    bool done_ = false;
};

// ---- countdown: n tasks each decrement; the last sets the latch ------------

struct Countdown {
    explicit Countdown(long n) : left(n) {}

    void hit()
    {
        if (left.fetch_sub(1, std::memory_order_acq_rel) == 1)
            latch.set();
    }

    std::atomic<long> left;
    Latch latch;
};

double now()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void fail(const char *bench, const char *fmt, long a, long b)
{
    std::fprintf(stderr, "wisp-bench-tbb: %s: verification failed: ", bench);
    std::fprintf(stderr, fmt, a, b);
    std::fprintf(stderr, "\n");
    std::exit(1);
}

void check_countdown(const char *bench, const Countdown &c)
{
    long left = c.left.load(std::memory_order_acquire);
    if (left != 0)
        fail(bench, "counter is %ld, expected %ld", left, 0);
}

// ---- 1. spawn_many_local: one task spawns n empty tasks ---------------------

// The root is enqueued from outside and runs on a worker; its task_group
// runs spawn onto that worker's deque (the other workers steal from it).
// TBB requires a task_group to be waited for, so the root waits for all n,
// which is also when they have all run.
double spawn_many_local(tbb::task_arena &arena, long n, long *ops)
{
    *ops = n;
    Countdown c(n);
    Latch root_done;
    double t0 = now();
    arena.enqueue([&] {
        tbb::task_group tg;
        for (long i = 0; i < n; i++)
            tg.run([&c] { c.left.fetch_sub(1, std::memory_order_acq_rel); });
        tg.wait();
        root_done.set();
    });
    root_done.wait();
    double t = now() - t0;
    check_countdown("spawn_many_local", c);
    return t;
}

// ---- 2. spawn_many_remote: the outside thread enqueues n empty tasks --------

double spawn_many_remote(tbb::task_arena &arena, long n, long *ops)
{
    *ops = n;
    Countdown c(n);
    double t0 = now();
    for (long i = 0; i < n; i++)
        arena.enqueue([&c] { c.hit(); });
    c.latch.wait();
    double t = now() - t0;
    check_countdown("spawn_many_remote", c);
    return t;
}

// ---- 5. chained_spawn: each task spawns the next, n deep --------------------

struct Chain {
    tbb::task_group *tg = nullptr;
    std::atomic<long> last{ 0 }; // the k of the last link, 1 when all n ran
};

void chain_link(Chain *ch, long k)
{
    if (k <= 1) {
        ch->last.store(k, std::memory_order_release);
        return;
    }
    ch->tg->run([ch, k] { chain_link(ch, k - 1); });
}

double chained_spawn(tbb::task_arena &arena, long n, long *ops)
{
    *ops = n;
    Chain ch;
    Latch root_done;
    double t0 = now();
    // One wait at the end, on the root's worker; every link is its own task.
    // The task_group lives (and dies) on the worker that waits for it.
    arena.enqueue([&] {
        tbb::task_group tg;
        ch.tg = &tg;
        tg.run([&ch, n] { chain_link(&ch, n); });
        tg.wait();
        root_done.set();
    });
    root_done.wait();
    double t = now() - t0;
    long last = ch.last.load(std::memory_order_acquire);
    if (last != 1)
        fail("chained_spawn", "last link was %ld, expected %ld", last, 1);
    return t;
}

// ---- 6. fib: every call forks both children and joins both ------------------

uint64_t fib(long n)
{
    if (n < 2)
        return (uint64_t)n;
    uint64_t a = 0, b = 0;
    tbb::task_group tg;
    tg.run([&a, n] { a = fib(n - 1); });
    tg.run([&b, n] { b = fib(n - 2); });
    tg.wait();
    return a + b;
}

uint64_t fib_expected(long n, uint64_t *calls)
{
    uint64_t a = 0, b = 1; // fib(i), fib(i+1)
    for (long i = 0; i < n; i++) {
        uint64_t c = a + b;
        a = b;
        b = c;
    }
    *calls = 2 * b - 1; // calls(n) = 2 fib(n+1) - 1
    return a;
}

double fib_bench(tbb::task_arena &arena, long n, long *ops)
{
    uint64_t calls;
    uint64_t want = fib_expected(n, &calls);
    *ops = (long)calls;
    uint64_t got = 0;
    Latch root_done;
    double t0 = now();
    arena.enqueue([&] {
        got = fib(n);
        root_done.set();
    });
    root_done.wait();
    double t = now() - t0;
    if (got != want) {
        std::fprintf(stderr, "wisp-bench-tbb: fib(%ld) = %llu, want %llu\n", n,
                     (unsigned long long)got, (unsigned long long)want);
        std::exit(1);
    }
    return t;
}

// ---- driver -------------------------------------------------------------------

struct Workload {
    const char *name;
    long default_n;
    double (*run)(tbb::task_arena &arena, long n, long *ops);
    const char *skip; // why TBB cannot run it, when run is null
};

const Workload workloads[] = {
    { "spawn_many_local", 1000000, spawn_many_local, nullptr },
    { "spawn_many_remote", 1000000, spawn_many_remote, nullptr },
    { "yield_many", 200, nullptr, "TBB tasks run to completion; there is no task yield" },
    { "ping_pong", 200000, nullptr, "TBB has no async tasks or wakers to bounce between" },
    { "ping_pong_rounds", 100000, nullptr, "TBB has no async tasks or channels to bounce a value over" },
    { "chan_mpsc", 1000000, nullptr,
      "TBB has no async channel: concurrent_bounded_queue::pop blocks the thread" },
    { "mutex_contended", 1000000, nullptr, "TBB has no async mutex: its mutexes block or spin the thread" },
    { "chained_spawn", 1000000, chained_spawn, nullptr },
    { "fib", 30, fib_bench, nullptr },
};

[[noreturn]] void usage(const char *msg)
{
    std::fprintf(stderr, "wisp-bench-tbb: %s\n", msg);
    std::fprintf(stderr, "usage: wisp-bench-tbb WORKLOAD [--threads N] [--n COUNT] [--reps R]\n"
                         "workloads:");
    for (const Workload &w : workloads)
        std::fprintf(stderr, " %s", w.name);
    std::fprintf(stderr, "\n");
    std::exit(2);
}

long parse_positive(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    long v = std::strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0) {
        char msg[160];
        std::snprintf(msg, sizeof msg, "%s: expected a positive integer, got '%s'", opt, s);
        usage(msg);
    }
    return v;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 2)
        usage("missing WORKLOAD");
    const Workload *wl = nullptr;
    for (const Workload &w : workloads)
        if (!std::strcmp(argv[1], w.name))
            wl = &w;
    char msg[160];
    if (!wl) {
        std::snprintf(msg, sizeof msg, "unknown workload '%s'", argv[1]);
        usage(msg);
    }
    long threads = 2, n = wl->default_n, reps = 1;
    for (int i = 2; i < argc; i++) {
        // Accept both "--opt VALUE" and "--opt=VALUE".
        const char *arg = argv[i], *value;
        const char *eq = std::strchr(arg, '=');
        std::size_t len = eq ? (std::size_t)(eq - arg) : std::strlen(arg);
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            std::snprintf(msg, sizeof msg, "%s needs a value", arg);
            usage(msg);
        }
        if (len == 9 && !std::strncmp(arg, "--threads", len))
            threads = parse_positive("--threads", value);
        else if (len == 3 && !std::strncmp(arg, "--n", len))
            n = parse_positive("--n", value);
        else if (len == 6 && !std::strncmp(arg, "--reps", len))
            reps = parse_positive("--reps", value);
        else {
            std::snprintf(msg, sizeof msg, "unknown argument '%.*s'", (int)len, arg);
            usage(msg);
        }
    }
    if (!std::strcmp(wl->name, "fib") && n > FIB_MAX_N)
        usage("fib: --n must be at most 90");
    if (threads > 4096)
        usage("--threads is too large");
    if (!wl->run) {
        std::fprintf(stderr, "skip tbb %s: %s\n", wl->name, wl->skip);
        return 3;
    }

    // One pool per process: N workers in an arena that keeps no slot for the
    // main thread, which TBB counts as one of max_allowed_parallelism.
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism, (std::size_t)threads + 1);
    tbb::task_arena arena((int)threads, 0);
    arena.initialize();
    long allowed = (long)tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
    if (arena.max_concurrency() != threads || allowed != threads + 1) {
        std::fprintf(stderr, "wisp-bench-tbb: arena has %d slots and TBB allows %ld threads, asked for %ld workers\n",
                     arena.max_concurrency(), allowed, threads);
        return 1;
    }

    for (long r = 0; r < reps; r++) {
        long ops;
        double s = wl->run(arena, n, &ops);
        std::printf("bench=%s impl=tbb threads=%ld n=%ld seconds=%.6f ns_per_op=%.1f\n", wl->name,
                    threads, n, s, s * 1e9 / (double)ops);
        std::fflush(stdout);
    }
    return 0;
}
