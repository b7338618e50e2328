//! Rayon peer for wisp's benchmark suite.
//!
//! Runs wisp's benchmark workloads on one Rayon `ThreadPool` (built once per
//! process with exactly `--threads` workers) and prints exactly one line per
//! repetition, in the same format as wisp's C driver and the Tokio peer:
//!
//! ```text
//! bench=WORKLOAD impl=rayon threads=N n=COUNT seconds=S ns_per_op=X
//! ```
//!
//! Usage: `wisp-bench-rayon WORKLOAD [--threads N] [--n COUNT] [--reps R]`
//!
//! Rayon is a fork-join pool, not an async runtime: it has no wakers and no
//! async channels or mutexes (so no `ping_pong`, `ping_pong_rounds`,
//! `chan_mpsc` or `mutex_contended`) and the packaged rayon-core (1.10) has
//! no `yield_now` (added in rayon-core 1.11), so no `yield_many`. Those
//! workloads print `skip rayon WORKLOAD: <reason>` on stderr and exit 3.
//!
//! Exit status: 0 on success, 1 if a workload produced a wrong result,
//! 2 on an unknown workload or bad arguments, 3 if the workload does not
//! apply to Rayon.

use std::process;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use rayon::ThreadPool;

/// Iterations each `yield_many` task would perform (for the ops count).
const YIELDS_PER_TASK: u64 = 1_000;

/// Largest `fib` argument whose task count `2*fib(n+1) - 1` fits in a u64.
const FIB_MAX_N: u64 = 90;

// ---------------------------------------------------------------------------
// Completion latch
// ---------------------------------------------------------------------------

/// Count-down latch: tasks decrement `remaining`; the one that takes it to
/// zero wakes the (non-pool) main thread blocked in [`Latch::wait`].
struct Latch {
    remaining: AtomicUsize,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Latch {
    fn new(count: usize) -> Arc<Self> {
        Arc::new(Latch {
            remaining: AtomicUsize::new(count),
            done: Mutex::new(false),
            cv: Condvar::new(),
        })
    }

    /// Decrement the counter; the last decrement signals completion.
    fn count_down(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }

    /// Block the calling (outside) thread until completion is signalled.
    fn wait(&self) {
        let mut done = self.done.lock().unwrap();
        while !*done {
            done = self.cv.wait(done).unwrap();
        }
    }

    fn remaining(&self) -> usize {
        self.remaining.load(Ordering::Acquire)
    }
}

// ---------------------------------------------------------------------------
// Workloads. Each returns the elapsed seconds of one repetition and verifies
// its own result (exiting 1 on a mismatch).
// ---------------------------------------------------------------------------

/// Report a failed correctness check and exit 1.
fn fail(bench: &str, msg: String) -> ! {
    eprintln!("wisp-bench-rayon: {bench}: verification failed: {msg}");
    process::exit(1);
}

/// Check that a latch-driven workload ran every task exactly once.
fn check_latch(bench: &str, latch: &Latch) {
    let left = latch.remaining();
    if left != 0 {
        fail(bench, format!("counter is {left}, expected 0"));
    }
}

/// 1. One root task (on a worker) spawns `n` empty detached tasks.
fn spawn_many_local(pool: &ThreadPool, n: u64) -> f64 {
    let latch = Latch::new(n as usize);
    let start = Instant::now();
    {
        let latch = latch.clone();
        // The root runs on a worker thread, so `rayon::spawn` pushes onto
        // that worker's local deque (other workers steal from it).
        pool.spawn(move || {
            for _ in 0..n {
                let latch = latch.clone();
                rayon::spawn(move || latch.count_down());
            }
        });
    }
    latch.wait();
    let secs = start.elapsed().as_secs_f64();
    check_latch("spawn_many_local", &latch);
    secs
}

/// 2. The outside main thread spawns `n` empty tasks into the pool
/// (Rayon's global injector queue).
fn spawn_many_remote(pool: &ThreadPool, n: u64) -> f64 {
    let latch = Latch::new(n as usize);
    let start = Instant::now();
    for _ in 0..n {
        let latch = latch.clone();
        pool.spawn(move || latch.count_down());
    }
    latch.wait();
    let secs = start.elapsed().as_secs_f64();
    check_latch("spawn_many_remote", &latch);
    secs
}

/// One link of `chained_spawn`: task `k` spawns task `k - 1` and returns.
/// Task 1 is the n-th and last task of the chain (the `k` handed down is the
/// hop count, so reaching 1 proves all `n` links ran); it releases the latch.
fn chain_link(done: Arc<Latch>, k: u64) {
    if k == 1 {
        done.count_down();
    } else {
        rayon::spawn(move || chain_link(done, k - 1));
    }
}

/// 5. A chain of `n` tasks, each spawning the next, started from outside.
fn chained_spawn(pool: &ThreadPool, n: u64) -> f64 {
    let done = Latch::new(1);
    let start = Instant::now();
    {
        let done = done.clone();
        pool.spawn(move || chain_link(done, n));
    }
    done.wait();
    start.elapsed().as_secs_f64()
}

/// Fork-join Fibonacci: every call with `n >= 2` forks both children with
/// `rayon::join` (the second becomes a stealable job, the first runs inline,
/// Rayon's only fork primitive) and joins both.
fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = rayon::join(|| fib(n - 1), || fib(n - 2));
    a + b
}

/// Iterative Fibonacci, used for verification and for the call count.
fn fib_iter(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        let next = a + b;
        a = b;
        b = next;
    }
    a
}

/// Number of calls in `fib(n)`: `2*fib(n+1) - 1`.
fn fib_tasks(n: u64) -> u64 {
    2 * fib_iter(n + 1) - 1
}

/// 6. `fib(n)` run on the pool from the outside main thread.
fn fib_bench(pool: &ThreadPool, n: u64) -> f64 {
    let start = Instant::now();
    // `install` injects the root into the pool and blocks this (non-pool)
    // thread until it returns.
    let got = pool.install(|| fib(n));
    let secs = start.elapsed().as_secs_f64();
    let want = fib_iter(n);
    if got != want {
        fail("fib", format!("fib({n}) = {got}, expected {want}"));
    }
    secs
}

// ---------------------------------------------------------------------------
// Workload table and command line
// ---------------------------------------------------------------------------

/// How a workload runs on Rayon, or why it cannot.
enum Run {
    Bench(fn(&ThreadPool, u64) -> f64),
    Skip(&'static str),
}

struct Workload {
    name: &'static str,
    default_n: u64,
    run: Run,
    /// Operations per repetition for a given `n` (the ns_per_op divisor).
    ops: fn(u64) -> u64,
}

const WORKLOADS: &[Workload] = &[
    Workload { name: "spawn_many_local", default_n: 1_000_000, run: Run::Bench(spawn_many_local), ops: |n| n },
    Workload { name: "spawn_many_remote", default_n: 1_000_000, run: Run::Bench(spawn_many_remote), ops: |n| n },
    Workload {
        name: "yield_many",
        default_n: 200,
        run: Run::Skip("rayon-core 1.10 (Debian's librust-rayon-core-dev) has no yield_now; it appeared in rayon-core 1.11"),
        ops: |n| n.saturating_mul(YIELDS_PER_TASK),
    },
    Workload {
        name: "ping_pong",
        default_n: 200_000,
        run: Run::Skip("rayon has no async tasks or wakers to bounce between"),
        ops: |n| n,
    },
    Workload {
        name: "ping_pong_rounds",
        default_n: 100_000,
        run: Run::Skip("rayon has no async tasks or channels to bounce a value over"),
        ops: |n| n,
    },
    Workload {
        name: "chan_mpsc",
        default_n: 1_000_000,
        run: Run::Skip("rayon has no async channel: a task cannot wait for a message without blocking its thread"),
        ops: |n| n,
    },
    Workload {
        name: "mutex_contended",
        default_n: 1_000_000,
        run: Run::Skip("rayon has no async mutex: std's Mutex blocks the thread"),
        ops: |n| n,
    },
    Workload { name: "chained_spawn", default_n: 1_000_000, run: Run::Bench(chained_spawn), ops: |n| n },
    Workload { name: "fib", default_n: 30, run: Run::Bench(fib_bench), ops: fib_tasks },
];

fn usage_error(msg: &str) -> ! {
    let names: Vec<&str> = WORKLOADS.iter().map(|w| w.name).collect();
    eprintln!("wisp-bench-rayon: {msg}");
    eprintln!("usage: wisp-bench-rayon WORKLOAD [--threads N] [--n COUNT] [--reps R]");
    eprintln!("workloads: {}", names.join(" "));
    process::exit(2);
}

/// Parse a positive integer option value.
fn parse_positive(opt: &str, value: Option<String>) -> u64 {
    let value = value.unwrap_or_else(|| usage_error(&format!("{opt} needs a value")));
    match value.parse::<u64>() {
        Ok(v) if v > 0 => v,
        _ => usage_error(&format!("{opt}: expected a positive integer, got '{value}'")),
    }
}

struct Args {
    workload: &'static Workload,
    threads: usize,
    n: u64,
    reps: u64,
}

fn parse_args() -> Args {
    let mut argv = std::env::args().skip(1);
    let name = argv.next().unwrap_or_else(|| usage_error("missing WORKLOAD"));
    let workload = WORKLOADS
        .iter()
        .find(|w| w.name == name)
        .unwrap_or_else(|| usage_error(&format!("unknown workload '{name}'")));

    let (mut threads, mut n, mut reps) = (2u64, workload.default_n, 1u64);
    while let Some(arg) = argv.next() {
        // Accept both "--opt VALUE" and "--opt=VALUE".
        let (opt, inline) = match arg.split_once('=') {
            Some((o, v)) => (o.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let value = inline.or_else(|| argv.next());
        match opt.as_str() {
            "--threads" => threads = parse_positive(&opt, value),
            "--n" => n = parse_positive(&opt, value),
            "--reps" => reps = parse_positive(&opt, value),
            _ => usage_error(&format!("unknown argument '{arg}'")),
        }
    }
    if workload.name == "fib" && n > FIB_MAX_N {
        usage_error(&format!("fib: --n must be at most {FIB_MAX_N}"));
    }
    if n > usize::MAX as u64 {
        usage_error("--n is too large");
    }
    let threads = usize::try_from(threads).unwrap_or_else(|_| usage_error("--threads is too large"));
    Args { workload, threads, n, reps }
}

fn main() {
    let args = parse_args();
    let w = args.workload;
    let run = match w.run {
        Run::Bench(run) => run,
        Run::Skip(reason) => {
            eprintln!("skip rayon {}: {}", w.name, reason);
            process::exit(3);
        }
    };

    // One pool per process, shared by all repetitions.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .unwrap_or_else(|e| {
            eprintln!("wisp-bench-rayon: cannot build thread pool: {e}");
            process::exit(1);
        });
    if pool.current_num_threads() != args.threads {
        eprintln!(
            "wisp-bench-rayon: pool has {} threads, asked for {}",
            pool.current_num_threads(),
            args.threads
        );
        process::exit(1);
    }

    let ops = (w.ops)(args.n) as f64;
    for _ in 0..args.reps {
        let secs = run(&pool, args.n);
        println!(
            "bench={} impl=rayon threads={} n={} seconds={:.6} ns_per_op={:.1}",
            w.name,
            args.threads,
            args.n,
            secs,
            secs * 1e9 / ops
        );
    }
}
