#!/usr/bin/env bash
# bench/ab.sh - A/B: the same workloads from two wisp-bench binaries (say
# the commit before a change and after it), run interleaved (a, b, a, b,
# ...) in one session so the machine's drift hits both alike.  Prints, per
# workload, the median, min and max of each and the ratio of medians b/a.
#
#   bench/ab.sh A_BIN B_BIN [--reps R] [--threads N] [--quick] [WORKLOAD...]
#
# Workloads default to the six scheduler workloads at the report's sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bench/ab.sh A_BIN B_BIN [--reps R] [--threads N] [--quick] [WORKLOAD...]" >&2; exit 2; }
A=$1 B=$2
shift 2
REPS=7 THREADS=2 QUICK=0 WORKLOADS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --reps) REPS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --quick) QUICK=1 ;;
    *) WORKLOADS+=("$1") ;;
    esac
    shift
done
declare -A SIZE=([spawn_many_local]=1000000 [spawn_many_remote]=1000000 [yield_many]=200
    [ping_pong]=200000 [chained_spawn]=1000000 [fib]=30)
[ "$QUICK" = 1 ] && SIZE=([spawn_many_local]=250000 [spawn_many_remote]=250000 [yield_many]=50
    [ping_pong]=50000 [chained_spawn]=250000 [fib]=26)
[ ${#WORKLOADS[@]} -gt 0 ] || WORKLOADS=(spawn_many_local spawn_many_remote yield_many ping_pong chained_spawn fib)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for w in "${WORKLOADS[@]}"; do
    n=${SIZE[$w]:-}
    for ((r = 1; r <= REPS; r++)); do
        printf '\r%-18s rep %d/%d ' "$w" "$r" "$REPS" >&2
        "$A" "$w" --threads "$THREADS" ${n:+--n "$n"} | sed 's/impl=[a-z_]*/impl=a/' >>"$out"
        "$B" "$w" --threads "$THREADS" ${n:+--n "$n"} | sed 's/impl=[a-z_]*/impl=b/' >>"$out"
    done
done
printf '\r%40s\r' '' >&2
echo "A: $A"
echo "B: $B"
echo "$THREADS workers, $REPS interleaved runs each, ns per operation"
awk "$(cat bench/results.awk)"'
{ collect($0, "ns_per_op") }
END {
    printf "%-18s %24s %24s %8s\n", "workload", "a median (min-max)", "b median (min-max)", "b/a"
    for (k = 1; k <= nb; k++) {
        b = order[k]; ma = median(vals[b, "a"]); mb = median(vals[b, "b"])
        printf "%-18s %8.1f (%5.1f-%6.1f) %8.1f (%5.1f-%6.1f) %8.3f\n", b,
            ma, minimum(vals[b, "a"]), maximum(vals[b, "a"]),
            mb, minimum(vals[b, "b"]), maximum(vals[b, "b"]), mb / ma
    }
}' "$out"
