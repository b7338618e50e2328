// Command wisp-bench-go is the Go (goroutine) peer for wisp's benchmark suite.
//
// It runs the scheduler workloads of wisp's C benchmark (bench/wisp_bench.c)
// and the Tokio peer (bench/peers/tokio), and their channel and lock ones
// (ping_pong_rounds, chan_mpsc, mutex_contended: Go channels and
// sync.Mutex), on Go's own scheduler, and prints exactly one line per
// repetition:
//
//	bench=WORKLOAD impl=go threads=N n=COUNT seconds=S ns_per_op=X
//
// Usage: wisp-bench-go WORKLOAD [--threads N] [--n COUNT] [--reps R]
//
// --threads sets GOMAXPROCS. The main goroutine is locked to its OS thread
// and plays the part of the "outside" thread that the C and Rust programs
// wait on: it starts each workload and blocks until it is done.
//
// Exit status: 0 on success, 1 if a workload produced a wrong result,
// 2 on an unknown workload or bad arguments.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// yieldsPerTask is how many times each yield_many goroutine yields.
const yieldsPerTask = 1000

// fibMaxN is the largest fib argument whose call count 2*fib(n+1)-1 fits
// in a uint64.
const fibMaxN = 90

// ---------------------------------------------------------------------------
// Completion countdown
// ---------------------------------------------------------------------------

// countdown: goroutines decrement left; the one that takes it to zero closes
// done, which the main goroutine is blocked on.
type countdown struct {
	left int64
	done chan struct{}
}

func newCountdown(n int64) *countdown {
	return &countdown{left: n, done: make(chan struct{})}
}

func (c *countdown) hit() {
	if atomic.AddInt64(&c.left, -1) == 0 {
		close(c.done)
	}
}

func (c *countdown) wait() { <-c.done }

// fail reports a failed correctness check and exits 1.
func fail(bench, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "wisp-bench-go: %s: verification failed: %s\n",
		bench, fmt.Sprintf(format, args...))
	os.Exit(1)
}

// checkCountdown checks that every goroutine of a countdown workload ran
// exactly once.
func checkCountdown(bench string, c *countdown) {
	if left := atomic.LoadInt64(&c.left); left != 0 {
		fail(bench, "counter is %d, expected 0", left)
	}
}

// ---------------------------------------------------------------------------
// Workloads. Each returns the elapsed seconds of one repetition and verifies
// its own result (exiting 1 on a mismatch).
// ---------------------------------------------------------------------------

// spawnEmpties starts n goroutines that each hit c once.
func spawnEmpties(c *countdown, n uint64) {
	for i := uint64(0); i < n; i++ {
		go c.hit()
	}
}

// 1. One root goroutine (inside the scheduler) starts n empty goroutines.
func spawnManyLocal(n uint64) float64 {
	c := newCountdown(int64(n))
	start := time.Now()
	go spawnEmpties(c, n)
	c.wait()
	secs := time.Since(start).Seconds()
	checkCountdown("spawn_many_local", c)
	return secs
}

// 2. The main goroutine, locked to its OS thread, starts n empty goroutines
// itself: Go has no thread outside its scheduler, so this is the nearest
// shape to spawning from outside the runtime.
func spawnManyRemote(n uint64) float64 {
	c := newCountdown(int64(n))
	start := time.Now()
	spawnEmpties(c, n)
	c.wait()
	secs := time.Since(start).Seconds()
	checkCountdown("spawn_many_remote", c)
	return secs
}

// 3. n goroutines, started by the main goroutine, each yield yieldsPerTask
// times with runtime.Gosched.
func yieldMany(n uint64) float64 {
	c := newCountdown(int64(n))
	start := time.Now()
	for i := uint64(0); i < n; i++ {
		go func() {
			for j := 0; j < yieldsPerTask; j++ {
				runtime.Gosched()
			}
			c.hit()
		}()
	}
	c.wait()
	secs := time.Since(start).Seconds()
	checkCountdown("yield_many", c)
	return secs
}

// pingsPerRound is the number of pinger/ponger pairs per ping_pong round
// (Tokio's NUM_PINGS).
const pingsPerRound = 1000

// 4. ping_pong in the shape of Tokio's rt_multi_threaded bench, n pairs in
// rounds of pingsPerRound. Per round the main goroutine starts a root
// goroutine; the root starts the pingers; each pinger makes two "oneshots"
// (channels of capacity 1), starts a ponger that receives on the first and
// answers on the second, sends on the first and receives the answer; the
// pinger that takes the round's countdown to zero releases the main
// goroutine. A last round of n % pingsPerRound pairs makes up an n that is
// not a multiple, so exactly n pairs run.
func pingPong(n uint64) float64 {
	var pongs uint64
	start := time.Now()
	for left := n; left > 0; {
		pings := left
		if pings > pingsPerRound {
			pings = pingsPerRound
		}
		left -= pings
		c := newCountdown(int64(pings))
		go func() {
			for i := uint64(0); i < pings; i++ {
				go func() {
					ping := make(chan struct{}, 1)
					pong := make(chan struct{}, 1)
					go func() {
						<-ping
						atomic.AddUint64(&pongs, 1)
						pong <- struct{}{}
					}()
					ping <- struct{}{}
					<-pong
					c.hit()
				}()
			}
		}()
		c.wait()
	}
	secs := time.Since(start).Seconds()
	if got := atomic.LoadUint64(&pongs); got != n {
		fail("ping_pong", "%d pongs, expected %d", got, n)
	}
	return secs
}

// 4b. ping_pong_rounds: two goroutines, started by a root goroutine, make n
// round trips over two unbuffered channels: ping sends the value, pong
// receives it and sends it back plus one, ping receives it.
func pingPongRounds(n uint64) float64 {
	c := newCountdown(2)
	var final uint64
	ping := make(chan uint64) // ping -> pong
	pong := make(chan uint64) // pong -> ping
	start := time.Now()
	go func() {
		go func() {
			v := uint64(0)
			for i := uint64(0); i < n; i++ {
				ping <- v
				v = <-pong
			}
			atomic.StoreUint64(&final, v)
			c.hit()
		}()
		go func() {
			for i := uint64(0); i < n; i++ {
				pong <- <-ping + 1
			}
			c.hit()
		}()
	}()
	c.wait()
	secs := time.Since(start).Seconds()
	if got := atomic.LoadUint64(&final); got != n {
		fail("ping_pong_rounds", "value is %d, expected %d", got, n)
	}
	return secs
}

// mpscProducers and mpscCapacity: chan_mpsc's producers and its channel's
// buffer.
const (
	mpscProducers = 4
	mpscCapacity  = 1024
)

// 4c. chan_mpsc: mpscProducers goroutines send n uint64s in all (producer p
// sends p, p+4, p+8, ... below n: n/4 each, the first n%4 one more) into
// one channel buffered to mpscCapacity; one consumer goroutine receives
// until the last producer to finish closes the channel.
func chanMpsc(n uint64) float64 {
	type result struct{ count, sum uint64 }
	done := make(chan result)
	start := time.Now()
	go func() {
		ch := make(chan uint64, mpscCapacity)
		go func() {
			var r result
			for v := range ch {
				r.count++
				r.sum += v
			}
			done <- r
		}()
		producing := int64(mpscProducers)
		for p := uint64(0); p < mpscProducers; p++ {
			go func(p uint64) {
				for v := p; v < n; v += mpscProducers {
					ch <- v
				}
				if atomic.AddInt64(&producing, -1) == 0 {
					close(ch)
				}
			}(p)
		}
	}()
	r := <-done
	secs := time.Since(start).Seconds()
	// Every value in 0..n once: n(n-1)/2, modulo 2^64 as the consumer sums.
	var want uint64
	if n%2 == 0 {
		want = n / 2 * (n - 1)
	} else {
		want = (n - 1) / 2 * n
	}
	if r.count != n || r.sum != want {
		fail("chan_mpsc", "received %d values summing to %d, expected %d summing to %d",
			r.count, r.sum, n, want)
	}
	return secs
}

// mutexTasks and mutexYieldEvery: mutex_contended's goroutines, and how
// many acquisitions each makes between two yields.
const (
	mutexTasks      = 8
	mutexYieldEvery = 64
)

// 4d. mutex_contended: mutexTasks goroutines take one sync.Mutex n times in
// all (n/8 each, the first n%8 once more), increment the counter it
// guards, and runtime.Gosched after every mutexYieldEvery-th acquisition
// (with the lock released). Go has no async mutex: sync.Mutex spins a
// little, then parks the goroutine on a runtime semaphore (not a thread),
// and hands the lock over directly only in its starvation mode; this is
// the nearest Go shape, not the same primitive as tokio::sync::Mutex.
func mutexContended(n uint64) float64 {
	var mu sync.Mutex
	var counter uint64
	c := newCountdown(mutexTasks)
	start := time.Now()
	go func() {
		for i := uint64(0); i < mutexTasks; i++ {
			takes := n / mutexTasks
			if i < n%mutexTasks {
				takes++
			}
			go func() {
				for k := uint64(1); k <= takes; k++ {
					mu.Lock()
					counter++
					mu.Unlock()
					if k%mutexYieldEvery == 0 {
						runtime.Gosched()
					}
				}
				c.hit()
			}()
		}
	}()
	c.wait()
	secs := time.Since(start).Seconds()
	mu.Lock()
	got := counter
	mu.Unlock()
	if got != n {
		fail("mutex_contended", "counter is %d, expected %d", got, n)
	}
	return secs
}

// chainLink is goroutine k of chained_spawn: it starts goroutine k-1 and
// returns. Goroutine 1 is the n-th and last of the chain (k counts the hops
// left, so reaching 1 proves all n links ran); it signals done.
func chainLink(done chan<- struct{}, k uint64) {
	if k <= 1 {
		close(done)
		return
	}
	go chainLink(done, k-1)
}

// 5. A chain of n goroutines, each starting the next.
func chainedSpawn(n uint64) float64 {
	done := make(chan struct{})
	start := time.Now()
	go chainLink(done, n)
	<-done
	return time.Since(start).Seconds()
}

// fib is recursive goroutine-parallel Fibonacci: every call with n >= 2
// starts both children as goroutines and waits for both results.
func fib(n uint64) uint64 {
	if n < 2 {
		return n
	}
	res := make(chan uint64, 2) // buffered: neither child blocks on send
	go func() { res <- fib(n - 1) }()
	go func() { res <- fib(n - 2) }()
	return <-res + <-res
}

// fibIter is iterative Fibonacci, used for verification and the call count.
func fibIter(n uint64) uint64 {
	a, b := uint64(0), uint64(1)
	for i := uint64(0); i < n; i++ {
		a, b = b, a+b
	}
	return a
}

// fibCalls is the number of calls (= goroutines) in fib(n): 2*fib(n+1)-1.
func fibCalls(n uint64) uint64 { return 2*fibIter(n+1) - 1 }

// 6. fib(n) with one goroutine per call, the root call in a goroutine too.
func fibBench(n uint64) float64 {
	root := make(chan uint64, 1)
	start := time.Now()
	go func() { root <- fib(n) }()
	got := <-root
	secs := time.Since(start).Seconds()
	if want := fibIter(n); got != want {
		fail("fib", "fib(%d) = %d, expected %d", n, got, want)
	}
	return secs
}

// ---------------------------------------------------------------------------
// Workload table and command line
// ---------------------------------------------------------------------------

type workload struct {
	name     string
	defaultN uint64
	run      func(n uint64) float64
	// ops is the number of operations per repetition (the ns_per_op divisor).
	ops func(n uint64) uint64
}

func identity(n uint64) uint64 { return n }

var workloads = []workload{
	{"spawn_many_local", 1_000_000, spawnManyLocal, identity},
	{"spawn_many_remote", 1_000_000, spawnManyRemote, identity},
	{"yield_many", 200, yieldMany, func(n uint64) uint64 { return n * yieldsPerTask }},
	{"ping_pong", 200_000, pingPong, identity},
	{"ping_pong_rounds", 100_000, pingPongRounds, identity},
	{"chan_mpsc", 1_000_000, chanMpsc, identity},
	{"mutex_contended", 1_000_000, mutexContended, identity},
	{"chained_spawn", 1_000_000, chainedSpawn, identity},
	{"fib", 30, fibBench, fibCalls},
}

func usageError(format string, args ...interface{}) {
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.name
	}
	fmt.Fprintf(os.Stderr, "wisp-bench-go: %s\n", fmt.Sprintf(format, args...))
	fmt.Fprintln(os.Stderr, "usage: wisp-bench-go WORKLOAD [--threads N] [--n COUNT] [--reps R]")
	fmt.Fprintf(os.Stderr, "workloads: %s\n", strings.Join(names, " "))
	os.Exit(2)
}

// parsePositive parses a positive integer option value.
func parsePositive(opt, value string, ok bool) uint64 {
	if !ok {
		usageError("%s needs a value", opt)
	}
	v, err := strconv.ParseUint(value, 10, 64)
	if err != nil || v == 0 {
		usageError("%s: expected a positive integer, got '%s'", opt, value)
	}
	return v
}

type options struct {
	w       *workload
	threads uint64
	n       uint64
	reps    uint64
}

func parseArgs(argv []string) options {
	if len(argv) == 0 {
		usageError("missing WORKLOAD")
	}
	var w *workload
	for i := range workloads {
		if workloads[i].name == argv[0] {
			w = &workloads[i]
		}
	}
	if w == nil {
		usageError("unknown workload '%s'", argv[0])
	}
	o := options{w: w, threads: 2, n: w.defaultN, reps: 1}
	for i := 1; i < len(argv); i++ {
		arg := argv[i]
		// Accept both "--opt VALUE" and "--opt=VALUE".
		opt, value, ok := strings.Cut(arg, "=")
		if !ok && i+1 < len(argv) {
			i++
			value, ok = argv[i], true
		}
		switch opt {
		case "--threads":
			o.threads = parsePositive(opt, value, ok)
		case "--n":
			o.n = parsePositive(opt, value, ok)
		case "--reps":
			o.reps = parsePositive(opt, value, ok)
		default:
			usageError("unknown argument '%s'", arg)
		}
	}
	if w.name == "fib" && o.n > fibMaxN {
		usageError("fib: --n must be at most %d", fibMaxN)
	}
	if o.n > 1<<62 || (w.name == "yield_many" && o.n > (1<<62)/yieldsPerTask) {
		usageError("--n is too large")
	}
	if o.threads > 1<<20 {
		usageError("--threads is too large")
	}
	return o
}

func main() {
	// The main goroutine stays on the main OS thread: it is the "outside"
	// spawner of spawn_many_remote and the waiter of every workload.
	runtime.LockOSThread()

	o := parseArgs(os.Args[1:])
	runtime.GOMAXPROCS(int(o.threads))

	ops := float64(o.w.ops(o.n))
	for r := uint64(0); r < o.reps; r++ {
		secs := o.w.run(o.n)
		fmt.Printf("bench=%s impl=go threads=%d n=%d seconds=%.6f ns_per_op=%.1f\n",
			o.w.name, o.threads, o.n, secs, secs*1e9/ops)
	}
}
