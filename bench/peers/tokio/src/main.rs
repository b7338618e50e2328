//! Tokio peer for wisp's benchmark suite.
//!
//! Runs the same six workloads as wisp's C benchmark on Tokio's multi-thread
//! runtime (shapes follow tokio's `benches/rt_multi_threaded.rs`) and prints
//! exactly one line per repetition:
//!
//! ```text
//! bench=WORKLOAD impl=tokio threads=N n=COUNT seconds=S ns_per_op=X
//! ```
//!
//! Usage: `wisp-bench-tokio WORKLOAD [--threads N] [--n COUNT] [--reps R]`
//!
//! Exit status: 0 on success, 1 if a workload produced a wrong result,
//! 2 on an unknown workload or bad arguments.

use std::future::Future;
use std::pin::Pin;
use std::process;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tokio::runtime::Runtime;

/// Iterations each `yield_many` task performs.
const YIELDS_PER_TASK: u64 = 1_000;

/// Largest `fib` argument whose task count `2*fib(n+1) - 1` fits in a u64.
const FIB_MAX_N: u64 = 90;

// ---------------------------------------------------------------------------
// Completion latch
// ---------------------------------------------------------------------------

/// Count-down latch: tasks decrement `remaining`; the one that takes it to
/// zero wakes the (non-runtime) main thread blocked in [`Latch::wait`].
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
    eprintln!("wisp-bench-tokio: {bench}: verification failed: {msg}");
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
fn spawn_many_local(rt: &Runtime, n: u64) -> f64 {
    let latch = Latch::new(n as usize);
    let start = Instant::now();
    {
        let latch = latch.clone();
        rt.block_on(async move {
            // The root runs on a worker thread, so its spawns use the
            // worker-local run queue (spilling to the injector on overflow).
            tokio::spawn(async move {
                for _ in 0..n {
                    let latch = latch.clone();
                    tokio::spawn(async move { latch.count_down() });
                }
            });
        });
    }
    latch.wait();
    let secs = start.elapsed().as_secs_f64();
    check_latch("spawn_many_local", &latch);
    secs
}

/// 2. The outside main thread spawns `n` empty tasks via the runtime handle.
fn spawn_many_remote(rt: &Runtime, n: u64) -> f64 {
    let latch = Latch::new(n as usize);
    let handle = rt.handle();
    let start = Instant::now();
    for _ in 0..n {
        let latch = latch.clone();
        handle.spawn(async move { latch.count_down() });
    }
    latch.wait();
    let secs = start.elapsed().as_secs_f64();
    check_latch("spawn_many_remote", &latch);
    secs
}

/// 3. `n` tasks, spawned from outside, each yield `YIELDS_PER_TASK` times.
fn yield_many(rt: &Runtime, n: u64) -> f64 {
    let latch = Latch::new(n as usize);
    let handle = rt.handle();
    let start = Instant::now();
    for _ in 0..n {
        let latch = latch.clone();
        handle.spawn(async move {
            for _ in 0..YIELDS_PER_TASK {
                tokio::task::yield_now().await;
            }
            latch.count_down();
        });
    }
    latch.wait();
    let secs = start.elapsed().as_secs_f64();
    check_latch("yield_many", &latch);
    secs
}

/// State shared by the two `ping_pong` sides.
struct PingPong {
    /// Number of bounces done so far; side `c % 2` owns the next one.
    counter: AtomicU64,
    /// `slots[i]` holds side i's waker while it waits for its turn.
    slots: [Mutex<Option<Waker>>; 2],
}

/// One side of `ping_pong`: a hand-written future that advances the shared
/// counter whenever it is its turn and wakes the peer after each bounce.
struct Side {
    shared: Arc<PingPong>,
    /// 0 for task A (even counter values), 1 for task B (odd ones).
    me: u64,
    /// Total number of bounces.
    n: u64,
}

impl Future for Side {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let me = self.me as usize;
        let peer = 1 - me;
        let sh = &*self.shared;
        loop {
            let c = sh.counter.load(Ordering::Acquire);
            if c >= self.n {
                return Poll::Ready(());
            }
            if c % 2 == self.me {
                // My turn: bounce, then wake the peer if it is parked.
                sh.counter.store(c + 1, Ordering::Release);
                if let Some(w) = sh.slots[peer].lock().unwrap().take() {
                    w.wake();
                }
                continue;
            }
            // Not my turn: register the waker, then re-check so a bounce
            // that raced with the registration is not lost. The peer takes
            // our slot under the same mutex after its store, so either it
            // sees our waker or we see its store here.
            *sh.slots[me].lock().unwrap() = Some(cx.waker().clone());
            let c = sh.counter.load(Ordering::Acquire);
            if c % 2 != self.me && c < self.n {
                return Poll::Pending;
            }
            // It became our turn (or the game ended) meanwhile: go again.
        }
    }
}

/// 4. Two tasks hand a turn back and forth `n` times.
fn ping_pong(rt: &Runtime, n: u64) -> f64 {
    let shared = Arc::new(PingPong {
        counter: AtomicU64::new(0),
        slots: [Mutex::new(None), Mutex::new(None)],
    });
    let start = Instant::now();
    {
        let shared = shared.clone();
        rt.block_on(async move {
            // A root task on a worker spawns both sides and joins them.
            let root = tokio::spawn(async move {
                let a = tokio::spawn(Side { shared: shared.clone(), me: 0, n });
                let b = tokio::spawn(Side { shared, me: 1, n });
                a.await.expect("ping_pong side A panicked");
                b.await.expect("ping_pong side B panicked");
            });
            root.await.expect("ping_pong root task panicked");
        });
    }
    let secs = start.elapsed().as_secs_f64();
    let c = shared.counter.load(Ordering::Acquire);
    if c != n {
        fail("ping_pong", format!("counter is {c}, expected {n}"));
    }
    secs
}

/// One link of `chained_spawn`: task `k` spawns task `k - 1` and returns.
/// Task 1 is the n-th and last task of the chain (the `k` handed down is the
/// hop count, so reaching 1 proves all `n` links ran); it releases the latch.
fn chain_link(done: Arc<Latch>, k: u64) {
    if k == 1 {
        done.count_down();
    } else {
        tokio::spawn(async move { chain_link(done, k - 1) });
    }
}

/// 5. A chain of `n` tasks, each spawning the next, started from a worker.
fn chained_spawn(rt: &Runtime, n: u64) -> f64 {
    let done = Latch::new(1);
    let start = Instant::now();
    {
        let done = done.clone();
        rt.block_on(async move {
            tokio::spawn(async move { chain_link(done, n) });
        });
    }
    done.wait();
    start.elapsed().as_secs_f64()
}

/// Recursive task-parallel Fibonacci: every call with `n >= 2` spawns both
/// children as tasks and awaits their join handles.
fn fib(n: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if n < 2 {
            return n;
        }
        let a = tokio::spawn(fib(n - 1));
        let b = tokio::spawn(fib(n - 2));
        a.await.expect("fib task panicked") + b.await.expect("fib task panicked")
    })
}

/// Iterative Fibonacci, used for verification and for the task count.
fn fib_iter(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        let next = a + b;
        a = b;
        b = next;
    }
    a
}

/// Number of tasks (= calls) in `fib(n)`: `2*fib(n+1) - 1`.
fn fib_tasks(n: u64) -> u64 {
    2 * fib_iter(n + 1) - 1
}

/// 6. `fib(n)` with one task per call, rooted in a spawned task.
fn fib_bench(rt: &Runtime, n: u64) -> f64 {
    let start = Instant::now();
    // `rt.spawn` rather than `tokio::spawn`: the latter would be evaluated
    // outside the runtime context, before `block_on` enters it.
    let got = rt.block_on(rt.spawn(fib(n))).expect("fib root task panicked");
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

struct Workload {
    name: &'static str,
    default_n: u64,
    run: fn(&Runtime, u64) -> f64,
    /// Operations per repetition for a given `n` (the ns_per_op divisor).
    ops: fn(u64) -> u64,
}

const WORKLOADS: &[Workload] = &[
    Workload { name: "spawn_many_local", default_n: 1_000_000, run: spawn_many_local, ops: |n| n },
    Workload { name: "spawn_many_remote", default_n: 1_000_000, run: spawn_many_remote, ops: |n| n },
    Workload { name: "yield_many", default_n: 200, run: yield_many, ops: |n| n.saturating_mul(YIELDS_PER_TASK) },
    Workload { name: "ping_pong", default_n: 200_000, run: ping_pong, ops: |n| n },
    Workload { name: "chained_spawn", default_n: 1_000_000, run: chained_spawn, ops: |n| n },
    Workload { name: "fib", default_n: 30, run: fib_bench, ops: fib_tasks },
];

fn usage_error(msg: &str) -> ! {
    let names: Vec<&str> = WORKLOADS.iter().map(|w| w.name).collect();
    eprintln!("wisp-bench-tokio: {msg}");
    eprintln!("usage: wisp-bench-tokio WORKLOAD [--threads N] [--n COUNT] [--reps R]");
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

    // One runtime per process, shared by all repetitions.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .build()
        .unwrap_or_else(|e| {
            eprintln!("wisp-bench-tokio: cannot build runtime: {e}");
            process::exit(1);
        });

    let ops = (w.ops)(args.n) as f64;
    for _ in 0..args.reps {
        let secs = (w.run)(&rt, args.n);
        println!(
            "bench={} impl=tokio threads={} n={} seconds={:.6} ns_per_op={:.1}",
            w.name,
            args.threads,
            args.n,
            secs,
            secs * 1e9 / ops
        );
    }
}
