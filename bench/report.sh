#!/usr/bin/env bash
# bench/report.sh - wisp's main job: sets up, builds, and runs every
# workload of wisp-bench beside the same workload on each peer runtime that
# can be built here (Tokio, Rayon, TBB, OpenMP, Go), interleaved (wisp, peer,
# peer, ..., wisp, peer, ...) so machine drift hits all of them alike. Prints
# a table of medians with wisp's time ratio to each peer, the cost of
# metrics and tracing, the idle CPU and per-task memory, and writes a chart;
# then the servers (bench/servers.sh): wisp-echo against the Tokio and Go
# echo servers, wisp-httpd against nginx, loaded by wisp-load and wrk, with
# their own table and chart.
#
#   bench/report.sh [--quick] [--reps R] [--threads N]
#
# --quick: 3 repetitions at a quarter of each workload's size, and the
# servers 2 runs of 2 s (under four minutes once built). Output goes to
# build-bench/report/ (results.txt, report.txt, report.svg, servers.svg). A peer whose toolchain is missing is skipped with
# a one-line reason; a workload a peer cannot express shows as "-".
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=5
THREADS=2
QUICK=0
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1; REPS=3 ;;
    --reps) REPS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    *) echo "usage: bench/report.sh [--quick] [--reps R] [--threads N]" >&2; exit 2 ;;
    esac
    shift
done

BUILD=build-bench
OUT=$BUILD/report
log() { printf '%s\n' "$*" >&2; }

tools/setup-debian.sh --bench

# ---- builds: wisp as shipped, and two variants for the overhead figures ----
build_wisp() { # dir, extra cmake args...
    local dir=$1
    shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DWISP_BUILD_TESTS=OFF -DWISP_BUILD_BENCH=ON \
        "$@" >/dev/null
    cmake --build "$dir" -j "$(nproc)" --target wisp-bench >/dev/null
}
log "building wisp (as shipped, without tracing, and without metrics or tracing)"
build_wisp "$BUILD"
cmake --build "$BUILD" -j "$(nproc)" --target wisp-echo wisp-httpd wisp-load >/dev/null
build_wisp "$BUILD-notrace" -DWISP_TRACING=OFF
build_wisp "$BUILD-bare" -DWISP_TRACING=OFF -DWISP_METRICS=OFF

declare -A BIN
BIN[wisp]=$BUILD/bench/wisp-bench
IMPLS=(wisp)
for peer in tokio rayon tbb openmp go; do
    log "building peer: $peer"
    bench/peers/$peer/build.sh "$BUILD/peers" >/dev/null 2>"$BUILD/peers-$peer.log" || true
    grep -h '^skip' "$BUILD/peers-$peer.log" >&2 || true
    if [ -x "$BUILD/peers/wisp-bench-$peer" ]; then
        BIN[$peer]=$BUILD/peers/wisp-bench-$peer
        IMPLS+=("$peer")
    elif ! grep -q '^skip' "$BUILD/peers-$peer.log"; then
        log "skip $peer: build failed (see $BUILD/peers-$peer.log)"
    fi
done

mkdir -p "$OUT"
results=$OUT/results.txt
: >"$results"

# ping_pong (pairs of tasks and oneshots, in rounds of 1,000), ping_pong_rounds,
# chan_mpsc and mutex_contended measure the async sync primitives (wisp's
# target: at most half Tokio's time on each).
WORKLOADS=(spawn_many_local spawn_many_remote yield_many ping_pong ping_pong_rounds chan_mpsc
    mutex_contended chained_spawn fib
    socket_ping_pong file_read timer_fire timer_cancel)
declare -A SIZE=([spawn_many_local]=1000000 [spawn_many_remote]=1000000 [yield_many]=200
    [ping_pong]=200000 [ping_pong_rounds]=100000 [chan_mpsc]=1000000 [mutex_contended]=1000000
    [chained_spawn]=1000000 [fib]=30
    [socket_ping_pong]=100000 [file_read]=50000 [timer_fire]=1000000 [timer_cancel]=1000000)
if [ "$QUICK" = 1 ]; then
    SIZE=([spawn_many_local]=250000 [spawn_many_remote]=250000 [yield_many]=50
        [ping_pong]=50000 [ping_pong_rounds]=25000 [chan_mpsc]=250000 [mutex_contended]=250000
        [chained_spawn]=250000 [fib]=26
        [socket_ping_pong]=25000 [file_read]=20000 [timer_fire]=100000 [timer_cancel]=250000)
fi
# The I/O and timer workloads run on wisp (both backends: wisp_epoll is wisp
# with WISP_IO=epoll) and Tokio; the scheduler and sync ones on every
# runtime but wisp_epoll (those that cannot express one exit 3: "-").
IO_WORKLOADS=" socket_ping_pong file_read timer_fire timer_cancel "
IMPLS+=(wisp_epoll)
BIN[wisp_epoll]=${BIN[wisp]}
runs() { # impl workload: whether the impl takes part in the workload
    case "$IO_WORKLOADS" in
    *" $2 "*) [ "$1" = wisp ] || [ "$1" = wisp_epoll ] || [ "$1" = tokio ] ;;
    *) [ "$1" != wisp_epoll ] ;;
    esac
}
# The file of file_read (256 MiB, in the page cache): made once here.
export WISP_BENCH_FILE=${WISP_BENCH_FILE:-$BUILD/bench-file}

# One run: appends its line, or an "na" line when the peer cannot express
# the workload (exit 3).
run_one() { # impl workload binary [extra args]
    local impl=$1 w=$2 bin=$3
    shift 3
    local rc=0
    if [ "$impl" = wisp_epoll ]; then
        WISP_IO=epoll "$bin" "$w" --threads "$THREADS" --n "${SIZE[$w]}" "$@" 2>>"$OUT/stderr.txt" |
            sed 's/impl=wisp /impl=wisp_epoll /' >>"$results" || rc=$?
    else
        "$bin" "$w" --threads "$THREADS" --n "${SIZE[$w]}" "$@" >>"$results" 2>>"$OUT/stderr.txt" || rc=$?
    fi
    if [ "$rc" = 3 ]; then
        echo "na bench=$w impl=$impl" >>"$results"
    elif [ "$rc" != 0 ]; then
        log "  $impl $w failed (exit $rc; see $OUT/stderr.txt)"
    fi
    return 0
}

total=0
for w in "${WORKLOADS[@]}"; do
    for impl in "${IMPLS[@]}"; do
        runs "$impl" "$w" && total=$((total + REPS))
    done
done
done_runs=0
start=$(date +%s)
declare -A NA
for w in "${WORKLOADS[@]}"; do
    for ((r = 1; r <= REPS; r++)); do
        for impl in "${IMPLS[@]}"; do
            runs "$impl" "$w" || continue
            [ -z "${NA[$impl.$w]:-}" ] || { done_runs=$((done_runs + 1)); continue; }
            printf '\r[%3d/%3d] %-18s %-7s rep %d/%d  (%ds) ' $((done_runs + 1)) "$total" "$w" \
                "$impl" "$r" "$REPS" $(($(date +%s) - start)) >&2
            run_one "$impl" "$w" "${BIN[$impl]}"
            grep -q "^na bench=$w impl=$impl\$" "$results" && NA[$impl.$w]=1
            done_runs=$((done_runs + 1))
        done
    done
done
printf '\r%60s\r' '' >&2

# ---- the cost of metrics and tracing: four wisp variants, interleaved ----
log "measuring the cost of metrics and tracing"
overhead=$OUT/overhead.txt
: >"$overhead"
# Differences of a few percent need many samples: 2*REPS processes per
# variant, 3 runs each, interleaved.  The wake-heavy workload is
# ping_pong_rounds (two tasks, a wake per message): ping_pong in Tokio's
# shape spreads 2,000 tasks a round over the workers and moves too much
# between runs (290-600 ns) to show a few percent.
for w in spawn_many_local ping_pong_rounds; do
    for ((r = 1; r <= 2 * REPS; r++)); do
        printf '\r  %-18s round %d/%d ' "$w" "$r" $((2 * REPS)) >&2
        "$BUILD-bare/bench/wisp-bench" "$w" --threads "$THREADS" --n "${SIZE[$w]}" --reps 3 |
            sed 's/impl=wisp/impl=bare/' >>"$overhead"
        "$BUILD-notrace/bench/wisp-bench" "$w" --threads "$THREADS" --n "${SIZE[$w]}" --reps 3 |
            sed 's/impl=wisp/impl=metrics/' >>"$overhead"
        "$BUILD/bench/wisp-bench" "$w" --threads "$THREADS" --n "${SIZE[$w]}" --reps 3 |
            sed 's/impl=wisp/impl=tracing_off/' >>"$overhead"
        "$BUILD/bench/wisp-bench" "$w" --threads "$THREADS" --n "${SIZE[$w]}" --reps 3 \
            --trace "$OUT/trace-$w.json" | sed 's/impl=wisp/impl=tracing_on/' >>"$overhead"
    done
done
printf '\r%60s\r' '' >&2

log "measuring idle CPU and task memory"
resources=$OUT/resources.txt
"${BIN[wisp]}" idle_cpu --threads "$THREADS" --n 2 >"$resources"
"${BIN[wisp]}" task_memory --threads "$THREADS" >>"$resources"
log "measuring idle CPU with 10,000 timers armed (3 s each)"
"${BIN[wisp]}" idle_timers --threads "$THREADS" --n 10000 >>"$resources"
[ -z "${BIN[tokio]:-}" ] || "${BIN[tokio]}" idle_timers --threads "$THREADS" --n 10000 >>"$resources"

# ---- the servers -----------------------------------------------------------------
log "running the servers (bench/servers.sh)"
if [ "$QUICK" = 1 ]; then
    bench/servers.sh "$BUILD" "$OUT" --reps 2 --seconds 2 --workers "$THREADS" >/dev/null
else
    bench/servers.sh "$BUILD" "$OUT" --reps "$REPS" --seconds 5 --workers "$THREADS" >/dev/null
fi

# ---- the run's facts ---------------------------------------------------------
crate_version() { # the packaged crate cargo built against
    local d
    d=$(ls -d /usr/share/cargo/registry/"$1"-1.* 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && echo "${d##*/}" || echo "$1 ?"
}
peer_version() {
    case "$1" in
    wisp) echo "wisp $(git describe --always --dirty 2>/dev/null || echo '?')" ;;
    wisp_epoll) echo "wisp_epoll (the same wisp, WISP_IO=epoll)" ;;
    tokio | rayon) echo "$(crate_version "$1") ($(rustc --version 2>/dev/null | cut -d' ' -f1-2))" ;;
    tbb) echo "tbb $(pkg-config --modversion tbb 2>/dev/null || echo '?')" ;;
    openmp) echo "openmp (libgomp of $(gcc -dumpfullversion 2>/dev/null || echo '?'))" ;;
    go) go version 2>/dev/null | cut -d' ' -f3 || echo "go ?" ;;
    esac
}
facts=$OUT/facts.txt
{
    echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "machine:  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs, kernel $(uname -r)"
    echo "compiler: $(cc --version | head -n 1)"
    printf 'runtimes:'
    for impl in "${IMPLS[@]}"; do printf ' %s;' "$(peer_version "$impl")"; done
    echo
    echo "run:      $(date -u '+%Y-%m-%d %H:%M UTC'), $THREADS workers, $REPS interleaved runs per workload"
} >"$facts"

# ---- the report (bench/results.awk is the one parser of result lines) ---------
LIB=$(cat bench/results.awk)
{
    cat "$facts"
    echo
    echo "ns per operation (lower is better): median (min-max) of the runs; '-': the peer cannot express it"
    awk -v impls="${IMPLS[*]}" "$LIB"'
    /^bench=/ { collect($0, "ns_per_op") }
    END {
        ni = split(impls, I, " ")
        printf "%-18s", "workload"
        for (i = 1; i <= ni; i++) printf " %22s", I[i]
        printf "\n"
        for (k = 1; k <= nb; k++) {
            b = order[k]; printf "%-18s", b
            for (i = 1; i <= ni; i++) {
                l = vals[b, I[i]]
                printf " %22s", l == "" ? "-" : sprintf("%.1f (%.1f-%.1f)", median(l), minimum(l), maximum(l))
            }
            printf "\n"
        }
        printf "\nwisp time / peer time (< 1: wisp is faster), medians\n"
        printf "%-18s", "workload"
        for (i = 2; i <= ni; i++) printf " %10s", "vs " I[i]
        printf "\n"
        for (k = 1; k <= nb; k++) {
            b = order[k]; printf "%-18s", b; w = vals[b, I[1]]
            for (i = 2; i <= ni; i++) {
                l = vals[b, I[i]]
                printf " %10s", (w == "" || l == "") ? "-" : sprintf("%.2f", median(w) / median(l))
            }
            printf "\n"
        }
    }' "$results"
    echo "(targets: wisp time / tokio time <= 0.5 on ping_pong, ping_pong_rounds, chan_mpsc and mutex_contended)"
    echo
    echo "cost of metrics and tracing (wisp, ns per operation, median (min-max)):"
    awk "$LIB"'
    { collect($0, "ns_per_op") }
    END {
        printf "%-18s %20s %20s %20s %20s   %s\n", "workload", "bare", "metrics", "tracing off", "tracing on", "metrics cost / tracing off cost / tracing on ratio"
        for (k = 1; k <= nb; k++) {
            b = order[k]
            bare = median(vals[b, "bare"]); met = median(vals[b, "metrics"]); off = median(vals[b, "tracing_off"]); on = median(vals[b, "tracing_on"])
            printf "%-18s", b
            split("bare metrics tracing_off tracing_on", V, " ")
            for (v = 1; v <= 4; v++) { l = vals[b, V[v]]; printf " %20s", sprintf("%.1f (%.1f-%.1f)", median(l), minimum(l), maximum(l)) }
            printf "   %+.1f%% / %+.1f%% / %.2fx\n", (met / bare - 1) * 100, (off / met - 1) * 100, on / off
        }
    }' "$overhead"
    echo "(targets: metrics < 3% slower; tracing off: no measurable difference; tracing on <= 2x on spawn_many_local)"
    echo
    awk '/^bench=idle_timers/ { split($2, who, "="); split($NF, kv, "=");
             printf "idle %s-worker runtime, 10,000 timers armed 60 s ahead: %s ms of CPU per second (%s; wisp target < 5)\n", "'"$THREADS"'", kv[2], who[2]; next }
         { for (i = 1; i <= NF; i++) { split($i, kv, "=");
             if (kv[1] == "cpu_ms_per_s") printf "idle %s-worker runtime: %s ms of CPU per second (target < 5)\n", "'"$THREADS"'", kv[2];
             if (kv[1] == "overhead_bytes_per_task") printf "empty task: %s bytes of runtime memory (target <= 64)\n", kv[2] } }' "$resources"
    echo
    echo "nginx: $(nginx -v 2>&1 | sed 's/.*: //'); wrk: $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
    cat "$OUT/servers.txt"
} | tee "$OUT/report.txt"

# ---- the chart: one group of bars per workload, one colour per runtime ----
awk -v impls="${IMPLS[*]}" -v factsfile="$facts" "$LIB"'
/^bench=/ { collect($0, "ns_per_op") }
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
END {
    nf = 0
    while ((getline line < factsfile) > 0) facts[++nf] = line
    ni = split(impls, I, " ")
    split("#d9480f #1c7ed6 #2f9e44 #ae3ec9 #f59f00 #0ca678 #868e96", C, " ")
    bw = 16; gap = 34; gw = ni * bw + gap; left = 60; top = 50 + 14 * nf + 20; h = 260
    W = left + nb * gw + 40; if (W < 1000) W = 1000
    H = top + h + 110
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", W, H
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"22\" font-size=\"15\" font-weight=\"bold\">wisp and peers: ns per operation, median with min-max whiskers</text>\n", left
    for (f = 1; f <= nf; f++)
        printf "<text x=\"%d\" y=\"%d\" fill=\"#333\" font-family=\"monospace\" font-size=\"10\">%s</text>\n", left, 40 + 14 * f, esc(facts[f])
    printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", left - 5, top + h, W - 20, top + h
    for (k = 1; k <= nb; k++) {
        b = order[k]; max = 0
        for (i = 1; i <= ni; i++) { l = vals[b, I[i]]; if (l != "" && maximum(l) + 0 > max) max = maximum(l) + 0 }
        x0 = left + (k - 1) * gw
        for (i = 1; i <= ni; i++) {
            l = vals[b, I[i]]
            if (l == "" || max == 0) continue
            m = median(l); lo = minimum(l); hi = maximum(l)
            bh = h * m / max; x = x0 + (i - 1) * bw; y = top + h - bh
            printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"%s\"><title>%s %s: %.1f ns/op (%.1f-%.1f)</title></rect>\n", x, y, bw - 2, bh, C[i], b, I[i], m, lo, hi
            xm = x + (bw - 2) / 2
            printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\"/>\n", xm, top + h - h * lo / max, xm, top + h - h * hi / max
            printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"8\" transform=\"rotate(-90 %.1f %.1f)\">%.0f</text>\n", x + bw / 2 + 3, top + h - h * hi / max - 3, x + bw / 2 + 3, top + h - h * hi / max - 3, m
        }
        printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x0 + ni * bw / 2, top + h + 16, b
    }
    for (i = 1; i <= ni; i++) {
        lx = left + (i - 1) * 90; ly = top + h + 50
        printf "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n", lx, ly, C[i], lx + 16, ly + 10, I[i]
    }
    printf "<text x=\"%d\" y=\"%d\" fill=\"#555\">bar labels: median ns per operation; lower is better</text>\n", left, top + h + 90
    printf "</svg>\n"
}' "$results" >"$OUT/report.svg"

log ""
log "report: $OUT/report.txt   charts: $OUT/report.svg $OUT/servers.svg   raw lines: $results $OUT/servers-results.txt"
log "finished in $(($(date +%s) - start))s of runs"
