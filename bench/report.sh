#!/usr/bin/env bash
# bench/report.sh - wisp's main job: sets up, builds, and runs every
# workload of wisp-bench beside the same workload on Tokio's multi-thread
# runtime, interleaved (wisp, tokio, wisp, tokio, ...) so machine drift hits
# both, then prints a table of medians and wisp's time ratio to Tokio.
#   bench/report.sh                 REPS=5 THREADS=2 by default
#   REPS=9 THREADS=2 bench/report.sh
# Build trees go to build-bench/.  A peer whose toolchain is missing is
# skipped with a one-line reason.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-5}
THREADS=${THREADS:-2}
BUILD=build-bench

tools/setup-debian.sh --bench
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DWISP_BUILD_TESTS=OFF -DWISP_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j "$(nproc)" >/dev/null
wisp="$BUILD/bench/wisp-bench"
bench/peers/tokio/build.sh "$BUILD/peers" || true
tokio="$BUILD/peers/wisp-bench-tokio"
[ -x "$tokio" ] || tokio=""

results=$(mktemp)
trap 'rm -f "$results"' EXIT
workloads="spawn_many_local spawn_many_remote yield_many ping_pong chained_spawn fib"
for w in $workloads; do
    printf 'running %-18s' "$w" >&2
    for ((r = 0; r < REPS; r++)); do
        "$wisp" "$w" --threads "$THREADS" >>"$results"
        [ -z "$tokio" ] || "$tokio" "$w" --threads "$THREADS" >>"$results"
        printf '.' >&2
    done
    printf '\n' >&2
done
printf 'running idle_cpu and task_memory\n' >&2
"$wisp" idle_cpu --threads "$THREADS" --n 2 >>"$results"
"$wisp" task_memory --threads "$THREADS" >>"$results"

echo
echo "wisp vs Tokio, $THREADS workers, median of $REPS runs (ns per operation; ratio = wisp/tokio, target <= 0.50)"
awk '
function field(name,   i, kv) {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] }
    return ""
}
function median(key,   n, i, j, t, a) {
    n = split(vals[key], a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    b = field("bench"); impl = field("impl")
    if (field("ns_per_op") != "") { key = b SUBSEP impl; vals[key] = vals[key] " " field("ns_per_op"); seen[b] = 1
        if (!(b in order)) { order[b] = ++nb; names[nb] = b } }
    if (b == "idle_cpu") idle = field("cpu_ms_per_s")
    if (b == "task_memory") mem = field("overhead_bytes_per_task")
}
END {
    printf "%-18s %12s %12s %8s %s\n", "workload", "wisp ns/op", "tokio ns/op", "ratio", "target"
    for (i = 1; i <= nb; i++) {
        b = names[i]; ws = median(b SUBSEP "wisp")
        if ((b SUBSEP "tokio") in vals) {
            tk = median(b SUBSEP "tokio"); ratio = ws / tk
            printf "%-18s %12.1f %12.1f %8.2f %s\n", b, ws, tk, ratio, ratio <= 0.5 ? "met" : "MISSED"
        } else
            printf "%-18s %12.1f %12s %8s %s\n", b, ws, "-", "-", "(no tokio)"
    }
    printf "\nidle runtime CPU: %s ms per second (target < 5)\n", idle
    printf "empty task memory: %s bytes per task (target <= 64)\n", mem
}' "$results"
