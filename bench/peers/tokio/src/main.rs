//! Tokio peer for wisp's benchmark suite.
//!
//! Runs the same workloads as wisp's C benchmark on Tokio's multi-thread
//! runtime (the scheduler shapes follow tokio's `benches/rt_multi_threaded.rs`;
//! the channel and lock ones use `tokio::sync`; the I/O and timer ones use
//! `tokio::net`, `tokio::fs` and `tokio::time`) and prints exactly one line
//! per repetition:
//!
//! ```text
//! bench=WORKLOAD impl=tokio threads=N n=COUNT seconds=S ns_per_op=X
//! ```
//!
//! (idle_timers prints `cpu_ms_per_s=X` instead of `ns_per_op`).  The six
//! scheduler workloads and the three `tokio::sync` ones (ping_pong_rounds,
//! chan_mpsc, mutex_contended) run on a runtime without Tokio's I/O and time
//! drivers, the others with both (`enable_all`).
//!
//! Usage: `wisp-bench-tokio WORKLOAD [--threads N] [--n COUNT] [--reps R]`
//!
//! Exit status: 0 on success, 1 if a workload produced a wrong result,
//! 2 on an unknown workload or bad arguments.

use std::future::Future;
use std::io::SeekFrom;
use std::pin::Pin;
use std::process;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::time::Sleep;

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

/// Pinger/ponger pairs per `ping_pong` round (Tokio's `NUM_PINGS`).
const PINGS_PER_ROUND: u64 = 1_000;

/// 4. Tokio's own `rt_multi_threaded` ping_pong, `n` pairs in rounds of
/// [`PINGS_PER_ROUND`]. Per round the outside thread spawns a root task
/// through `block_on`; the root spawns the pingers; each pinger makes two
/// oneshots, spawns a ponger that awaits the first and answers on the
/// second, sends on the first and awaits the answer; the pinger that takes
/// the round's `remaining` counter to zero signals the outside thread over a
/// `std::sync::mpsc::sync_channel`, which it `recv()`s. A last round of
/// `n % PINGS_PER_ROUND` pairs makes up an `n` that is not a multiple, so
/// exactly `n` pairs run.
fn ping_pong(rt: &Runtime, n: u64) -> f64 {
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let remaining = Arc::new(AtomicU64::new(0));
    let pongs = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut left = n;
    while left > 0 {
        let pings = left.min(PINGS_PER_ROUND);
        left -= pings;
        remaining.store(pings, Ordering::Relaxed);
        let (done_tx, remaining, pongs) = (done_tx.clone(), remaining.clone(), pongs.clone());
        rt.block_on(async move {
            tokio::spawn(async move {
                for _ in 0..pings {
                    let (done_tx, remaining, pongs) = (done_tx.clone(), remaining.clone(), pongs.clone());
                    tokio::spawn(async move {
                        let (tx1, rx1) = tokio::sync::oneshot::channel::<()>();
                        let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
                        tokio::spawn(async move {
                            rx1.await.expect("ping_pong: ping lost");
                            pongs.fetch_add(1, Ordering::Relaxed);
                            tx2.send(()).expect("ping_pong: pinger gone");
                        });
                        tx1.send(()).expect("ping_pong: ponger gone");
                        rx2.await.expect("ping_pong: pong lost");
                        // AcqRel: the last pinger sees every pong counted.
                        if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                            done_tx.send(()).expect("ping_pong: main thread gone");
                        }
                    });
                }
            });
        });
        done_rx.recv().expect("ping_pong: round never ended");
    }
    let secs = start.elapsed().as_secs_f64();
    let got = pongs.load(Ordering::Acquire);
    if got != n {
        fail("ping_pong", format!("{got} pongs, expected {n}"));
    }
    secs
}

/// 4b. `ping_pong_rounds`: one pair of tasks makes `n` round trips over two
/// `tokio::sync::mpsc` channels of capacity 1: ping sends the value, pong
/// receives it and sends it back plus one, ping receives it.
fn ping_pong_rounds(rt: &Runtime, n: u64) -> f64 {
    let start = Instant::now();
    let got = rt.block_on(async move {
        // A root task on a worker spawns both sides and joins them.
        let root = tokio::spawn(async move {
            let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
            let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
            let ping = tokio::spawn(async move {
                let mut v = 0u64;
                for _ in 0..n {
                    ping_tx.send(v).await.expect("ping_pong_rounds: pong gone");
                    v = pong_rx.recv().await.expect("ping_pong_rounds: pong gone");
                }
                v
            });
            let pong = tokio::spawn(async move {
                for _ in 0..n {
                    let v = ping_rx.recv().await.expect("ping_pong_rounds: ping gone");
                    pong_tx.send(v + 1).await.expect("ping_pong_rounds: ping gone");
                }
            });
            let v = ping.await.expect("ping_pong_rounds: ping panicked");
            pong.await.expect("ping_pong_rounds: pong panicked");
            v
        });
        root.await.expect("ping_pong_rounds root task panicked")
    });
    let secs = start.elapsed().as_secs_f64();
    if got != n {
        fail("ping_pong_rounds", format!("value is {got}, expected {n}"));
    }
    secs
}

/// Producers of `chan_mpsc`.
const MPSC_PRODUCERS: u64 = 4;
/// Capacity of `chan_mpsc`'s channel.
const MPSC_CAPACITY: usize = 1_024;

/// 4c. `chan_mpsc`: [`MPSC_PRODUCERS`] tasks send `n` u64s in all (producer
/// p sends p, p + 4, p + 8, ... below n: n / 4 each, the first n % 4 one
/// more) into one bounded `tokio::sync::mpsc` channel of capacity
/// [`MPSC_CAPACITY`]; one consumer task receives until every sender is gone.
fn chan_mpsc(rt: &Runtime, n: u64) -> f64 {
    let start = Instant::now();
    let (count, sum) = rt.block_on(async move {
        // A root task on a worker spawns the consumer and the producers.
        let root = tokio::spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(MPSC_CAPACITY);
            let consumer = tokio::spawn(async move {
                let (mut count, mut sum) = (0u64, 0u64);
                while let Some(v) = rx.recv().await {
                    count += 1;
                    sum = sum.wrapping_add(v);
                }
                (count, sum)
            });
            for p in 0..MPSC_PRODUCERS {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut v = p;
                    while v < n {
                        tx.send(v).await.expect("chan_mpsc: consumer gone");
                        v += MPSC_PRODUCERS;
                    }
                });
            }
            drop(tx); // the channel closes when the last producer is done
            consumer.await.expect("chan_mpsc consumer panicked")
        });
        root.await.expect("chan_mpsc root task panicked")
    });
    let secs = start.elapsed().as_secs_f64();
    // Every value in 0..n once: n(n-1)/2, modulo 2^64 as the consumer sums.
    let want = (u128::from(n) * u128::from(n.saturating_sub(1)) / 2) as u64;
    if count != n || sum != want {
        fail("chan_mpsc", format!("received {count} values summing to {sum}, expected {n} summing to {want}"));
    }
    secs
}

/// Tasks of `mutex_contended`.
const MUTEX_TASKS: u64 = 8;
/// `mutex_contended` tasks yield after every this many acquisitions.
const MUTEX_YIELD_EVERY: u64 = 64;

/// 4d. `mutex_contended`: [`MUTEX_TASKS`] tasks take one
/// `tokio::sync::Mutex<u64>` `n` times in all (n / 8 each, the first n % 8
/// once more), increment the counter it guards, and `yield_now` after every
/// [`MUTEX_YIELD_EVERY`]-th acquisition (with the lock released).
fn mutex_contended(rt: &Runtime, n: u64) -> f64 {
    let mutex = Arc::new(tokio::sync::Mutex::new(0u64));
    let start = Instant::now();
    {
        let mutex = mutex.clone();
        rt.block_on(async move {
            // A root task on a worker spawns the tasks and joins them.
            let root = tokio::spawn(async move {
                let mut tasks = Vec::new();
                for i in 0..MUTEX_TASKS {
                    let takes = n / MUTEX_TASKS + u64::from(i < n % MUTEX_TASKS);
                    let mutex = mutex.clone();
                    tasks.push(tokio::spawn(async move {
                        for k in 1..=takes {
                            *mutex.lock().await += 1;
                            if k % MUTEX_YIELD_EVERY == 0 {
                                tokio::task::yield_now().await;
                            }
                        }
                    }));
                }
                for t in tasks {
                    t.await.expect("mutex_contended task panicked");
                }
            });
            root.await.expect("mutex_contended root task panicked");
        });
    }
    let secs = start.elapsed().as_secs_f64();
    let got = *mutex.try_lock().expect("mutex_contended: mutex still held");
    if got != n {
        fail("mutex_contended", format!("counter is {got}, expected {n}"));
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
// I/O and timer workloads
// ---------------------------------------------------------------------------

/// 7. Two tasks bounce 64 bytes `n` times over a Unix stream socketpair.
fn socket_ping_pong(rt: &Runtime, n: u64) -> f64 {
    let start = Instant::now();
    rt.block_on(async move {
        let (mut a, mut b) = tokio::net::UnixStream::pair().expect("socketpair");
        let ta = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            for _ in 0..n {
                a.write_all(&buf).await.expect("write");
                a.read_exact(&mut buf).await.expect("read");
            }
        });
        let tb = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            for _ in 0..n {
                b.read_exact(&mut buf).await.expect("read");
                b.write_all(&buf).await.expect("write");
            }
        });
        ta.await.expect("side A panicked");
        tb.await.expect("side B panicked");
    });
    start.elapsed().as_secs_f64()
}

const FILE_SIZE: u64 = 256 << 20;
const BLOCK: u64 = 4096;
const READERS: u64 = 64;

/// The file of `file_read`: WISP_BENCH_FILE (as wisp-bench makes it if it
/// is missing or short), read once so that it sits in the page cache.
fn bench_file() -> String {
    use std::io::{Read, Write};
    let path = std::env::var("WISP_BENCH_FILE").unwrap_or_else(|_| "/tmp/wisp-bench-file".into());
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .open(&path)
        .unwrap_or_else(|e| fail("file_read", format!("{path}: {e}")));
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut chunk = vec![0u8; 1 << 20];
    if len < FILE_SIZE {
        let mut x: u64 = 88172645463325252;
        for _ in 0..FILE_SIZE >> 20 {
            for c in chunk.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.copy_from_slice(&x.to_ne_bytes());
            }
            f.write_all(&chunk).unwrap_or_else(|e| fail("file_read", format!("{path}: {e}")));
        }
    }
    let mut f = std::fs::File::open(&path).unwrap_or_else(|e| fail("file_read", format!("{e}")));
    while f.read(&mut chunk).map(|k| k > 0).unwrap_or(false) {}
    path
}

/// 8. 64 tasks read `n` 4 KiB blocks in all at random aligned offsets of a
/// 256 MiB file in the page cache; each task opens the file, then seeks
/// and reads.
fn file_read(rt: &Runtime, n: u64) -> f64 {
    let path = Arc::new(bench_file());
    let start = Instant::now();
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for i in 0..READERS {
            let reads = n / READERS + u64::from(i < n % READERS);
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                let mut f = tokio::fs::File::open(path.as_str()).await.expect("open");
                let mut buf = vec![0u8; BLOCK as usize];
                let mut rng = 0x9E3779B97F4A7C15u64.wrapping_mul(i + 1);
                for _ in 0..reads {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let off = rng % (FILE_SIZE / BLOCK) * BLOCK;
                    f.seek(SeekFrom::Start(off)).await.expect("seek");
                    f.read_exact(&mut buf).await.expect("read");
                }
            }));
        }
        for t in tasks {
            t.await.expect("reader panicked");
        }
    });
    start.elapsed().as_secs_f64()
}

/// 9. `n` tasks, task i sleeps 1 + i % 10 ms; spawned from a task.
fn timer_fire(rt: &Runtime, n: u64) -> f64 {
    let latch = Latch::new(n as usize);
    let start = Instant::now();
    {
        let latch = latch.clone();
        rt.block_on(async move {
            tokio::spawn(async move {
                for i in 0..n {
                    let latch = latch.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(1 + i % 10)).await;
                        latch.count_down();
                    });
                }
            });
        });
    }
    latch.wait();
    let secs = start.elapsed().as_secs_f64();
    check_latch("timer_fire", &latch);
    secs
}

/// Arms `n` sleeps, 1 to 10 s ahead of each one's arming: each is created
/// in a vector that never grows past its capacity, and polled once there.
struct ArmAll {
    n: u64,
    sleeps: Vec<Sleep>,
}

impl Future for ArmAll {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: ArmAll is never moved once polled (it is awaited in
        // place), and the vector has room for all n sleeps, so none moves
        // after its first poll.
        let this = unsafe { self.get_unchecked_mut() };
        for i in 0..this.n {
            this.sleeps.push(tokio::time::sleep(Duration::from_secs(1 + i % 10)));
            let s = unsafe { Pin::new_unchecked(this.sleeps.last_mut().unwrap()) };
            if s.poll(cx).is_ready() {
                fail("timer_cancel", format!("sleep {i} fired early"));
            }
        }
        Poll::Ready(())
    }
}

/// 10. One task arms `n` sleeps 1 to 10 s ahead, polls each once, then drops
/// them all.
fn timer_cancel(rt: &Runtime, n: u64) -> f64 {
    rt.block_on(rt.spawn(async move {
        let start = Instant::now();
        {
            let mut arm = ArmAll { n, sleeps: Vec::with_capacity(n as usize) };
            // SAFETY: pinned in this scope, never moved; dropped at its end
            // with every sleep in it (the cancels are measured).
            unsafe { Pin::new_unchecked(&mut arm) }.await;
        }
        start.elapsed().as_secs_f64()
    }))
    .expect("timer_cancel task panicked")
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// 11. `n` sleeps armed 60 s ahead, the runtime idle for 3 s: the CPU it
/// burns, in ms per second (returned as the "extra" figure).
fn idle_timers(rt: &Runtime, n: u64) -> f64 {
    let armed = Arc::new(AtomicU64::new(0));
    for _ in 0..n {
        let armed = armed.clone();
        rt.spawn(async move {
            let sleep = tokio::time::sleep(Duration::from_secs(60));
            armed.fetch_add(1, Ordering::Release);
            sleep.await;
        });
    }
    while armed.load(Ordering::Acquire) < n {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(100));
    let (c0, t0) = (cpu_seconds(), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (cpu, t) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    IDLE_CPU_MS_PER_S.store((cpu * 1e3 / t * 10.0) as u64, Ordering::Relaxed);
    t
}

/// idle_timers' figure (tenths of a ms per second).
static IDLE_CPU_MS_PER_S: AtomicU64 = AtomicU64::new(0);

// ---------------------------------------------------------------------------
// Workload table and command line
// ---------------------------------------------------------------------------

struct Workload {
    name: &'static str,
    default_n: u64,
    run: fn(&Runtime, u64) -> f64,
    /// Operations per repetition for a given `n` (the ns_per_op divisor).
    ops: fn(u64) -> u64,
    /// Needs Tokio's I/O and time drivers.
    drivers: bool,
}

const WORKLOADS: &[Workload] = &[
    Workload { name: "spawn_many_local", default_n: 1_000_000, run: spawn_many_local, ops: |n| n, drivers: false },
    Workload { name: "spawn_many_remote", default_n: 1_000_000, run: spawn_many_remote, ops: |n| n, drivers: false },
    Workload { name: "yield_many", default_n: 200, run: yield_many, ops: |n| n.saturating_mul(YIELDS_PER_TASK), drivers: false },
    Workload { name: "ping_pong", default_n: 200_000, run: ping_pong, ops: |n| n, drivers: false },
    Workload { name: "ping_pong_rounds", default_n: 100_000, run: ping_pong_rounds, ops: |n| n, drivers: false },
    Workload { name: "chan_mpsc", default_n: 1_000_000, run: chan_mpsc, ops: |n| n, drivers: false },
    Workload { name: "mutex_contended", default_n: 1_000_000, run: mutex_contended, ops: |n| n, drivers: false },
    Workload { name: "chained_spawn", default_n: 1_000_000, run: chained_spawn, ops: |n| n, drivers: false },
    Workload { name: "fib", default_n: 30, run: fib_bench, ops: fib_tasks, drivers: false },
    Workload { name: "socket_ping_pong", default_n: 100_000, run: socket_ping_pong, ops: |n| n, drivers: true },
    Workload { name: "file_read", default_n: 200_000, run: file_read, ops: |n| n, drivers: true },
    Workload { name: "timer_fire", default_n: 1_000_000, run: timer_fire, ops: |n| n, drivers: true },
    Workload { name: "timer_cancel", default_n: 1_000_000, run: timer_cancel, ops: |n| n, drivers: true },
    Workload { name: "idle_timers", default_n: 10_000, run: idle_timers, ops: |_| 1, drivers: true },
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
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(args.threads);
    if w.drivers {
        builder.enable_all();
    }
    let rt = builder
        .build()
        .unwrap_or_else(|e| {
            eprintln!("wisp-bench-tokio: cannot build runtime: {e}");
            process::exit(1);
        });

    let ops = (w.ops)(args.n) as f64;
    for _ in 0..args.reps {
        let secs = (w.run)(&rt, args.n);
        if w.name == "idle_timers" {
            let x = IDLE_CPU_MS_PER_S.load(Ordering::Relaxed) as f64 / 10.0;
            println!(
                "bench={} impl=tokio threads={} n={} seconds={:.6} cpu_ms_per_s={:.1}",
                w.name, args.threads, args.n, secs, x
            );
            continue;
        }
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
