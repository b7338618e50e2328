#!/usr/bin/env bash
# bench/servers.sh - the server comparisons of the report (bench/report.sh
# runs it; it can run alone once wisp and the peers are built):
#
#   echo  64 connections, 64-byte round trips, wisp-load --proto echo:
#         wisp-echo (io_uring), wisp-echo (epoll), the Tokio and Go echo
#         servers of bench/peers/
#   http  GET / of a 13-byte body over 64 keep-alive connections, loaded by
#         wrk -t1 -c64, wrk with 16 pipelined requests per connection, and
#         wisp-load (1 and 16 pipelined): wisp-httpd (io_uring, epoll) and
#         Debian's nginx (2 workers, access_log off, return 200 with the same
#         body, keepalive_requests raised so it never closes a benchmark
#         connection, reuseport so both workers accept)
#
# Every server runs 2 workers on loopback beside its load generator;
# servers and loads are interleaved (wisp, peer, ..., then again) REPS times
# and each run restarts its server.
#
#   bench/servers.sh BUILD OUT [--reps R] [--seconds S] [--workers N]
#
# BUILD holds servers/wisp-{echo,httpd,load} and peers/; writes
# OUT/servers-results.txt (one line a run), OUT/servers.txt (the table) and
# OUT/servers.svg (the chart).  A peer that is missing is skipped with a
# one-line reason.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=$1
OUT=$2
shift 2
REPS=3
SECONDS_PER_RUN=5
WORKERS=2
while [ $# -gt 0 ]; do
    case "$1" in
    --reps) REPS=$2; shift ;;
    --seconds) SECONDS_PER_RUN=$2; shift ;;
    --workers) WORKERS=$2; shift ;;
    *) echo "usage: bench/servers.sh BUILD OUT [--reps R] [--seconds S] [--workers N]" >&2; exit 2 ;;
    esac
    shift
done
log() { printf '%s\n' "$*" >&2; }
mkdir -p "$OUT"
RES=$OUT/servers-results.txt
: >"$RES"
S=$BUILD/servers
LOAD=$S/wisp-load

# ---- the servers ----------------------------------------------------------------
ECHO_IMPLS=(wisp wisp_epoll)
HTTP_IMPLS=(wisp wisp_epoll)
if [ -x "$BUILD/peers/wisp-echo-tokio" ]; then ECHO_IMPLS+=(tokio); else log "skip echo tokio: $BUILD/peers/wisp-echo-tokio not built"; fi
if [ -x "$BUILD/peers/wisp-echo-go" ]; then ECHO_IMPLS+=(go); else log "skip echo go: $BUILD/peers/wisp-echo-go not built"; fi
if command -v nginx >/dev/null; then HTTP_IMPLS+=(nginx); else log "skip nginx: not installed (apt-get install nginx)"; fi
HAVE_WRK=0
if command -v wrk >/dev/null; then HAVE_WRK=1; else log "skip wrk loads: wrk not installed"; fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PID=
PORT=
# Starts server kind ($1: echo|http) of impl $2; sets PID and PORT.
start_server() {
    local kind=$1 impl=$2 bin args=() be=
    case "$impl" in
    wisp | wisp_epoll)
        [ "$impl" = wisp ] && be=io_uring || be=epoll
        [ "$kind" = echo ] && bin=$S/wisp-echo || bin=$S/wisp-httpd
        args=(--port 0 --workers "$WORKERS" --backend "$be") ;;
    tokio) bin=$BUILD/peers/wisp-echo-tokio; args=(--port 0 --workers "$WORKERS") ;;
    go) bin=$BUILD/peers/wisp-echo-go; args=(--port 0 --workers "$WORKERS") ;;
    nginx)
        PORT=$(free_port)
        local dir
        dir=$(cd "$OUT" && pwd)/nginx
        mkdir -p "$dir/logs" "$dir/tmp"
        cat >"$dir/nginx.conf" <<EOF
worker_processes $WORKERS;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT reuseport;
        default_type text/plain;
        location / { return 200 "Hello, World!"; }
    }
}
EOF
        nginx -p "$dir" -c "$dir/nginx.conf" 2>>"$OUT/servers-stderr.txt" &
        PID=$!
        local i
        for i in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
            sleep 0.05
        done
        log "nginx did not start (see $OUT/servers-stderr.txt)"
        return 1 ;;
    esac
    local out=$OUT/server.out
    : >"$out"
    "$bin" "${args[@]}" >"$out" 2>>"$OUT/servers-stderr.txt" &
    PID=$!
    local i
    for i in $(seq 200); do
        grep -q '^listening' "$out" && break
        sleep 0.05
    done
    PORT=$(sed -n 's/^listening .*:\([0-9]*\) backend=.*/\1/p' "$out")
    [ -n "$PORT" ] || { log "$impl $kind server did not start (see $OUT/servers-stderr.txt)"; return 1; }
}

stop_server() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
}

# wrk's "Requests/sec" and its 99% latency, in the result-line format.
WRK_P16=$OUT/wrk-pipeline16.lua
cat >"$WRK_P16" <<'EOF'
-- 16 pipelined GETs per request batch (wrk's pipeline example)
init = function(args)
   local r = {}
   for i = 1, 16 do r[i] = wrk.format(nil, "/") end
   req = table.concat(r)
end
request = function() return req end
EOF
run_wrk() { # port pipeline
    local extra=()
    [ "$2" = 16 ] && extra=(-s "$WRK_P16")
    wrk -t1 -c64 -d"${SECONDS_PER_RUN}s" --latency "${extra[@]}" "http://127.0.0.1:$1/" 2>>"$OUT/servers-stderr.txt" |
        awk 'function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
             /Requests\/sec/ { r = $2 } /^ +99%/ { p = us($2) } /Non-2xx|Socket errors/ { e = 1 }
             END { if (r == "") exit 1; printf "rps=%s p99_us=%.1f%s\n", r, p, e ? " errors=1" : "" }'
}
run_load() { # port proto pipeline
    "$LOAD" --port "$1" --proto "$2" --pipeline "$3" --conns 64 --seconds "$SECONDS_PER_RUN" 2>>"$OUT/servers-stderr.txt" |
        sed -n 's/.* errors=\([0-9]*\) .* rps=\([0-9.]*\) p50_us=[0-9.]* p99_us=\([0-9.]*\).*/rps=\2 p99_us=\3 errors=\1/p'
}

one() { # kind impl load: one run, appended to RES
    local kind=$1 impl=$2 load=$3 line=
    start_server "$kind" "$impl" || return 0
    case "$load" in
    wisp-load) line=$(run_load "$PORT" "$kind" 1) ;;
    wisp-load-p16) line=$(run_load "$PORT" http 16) ;;
    wrk) line=$(run_wrk "$PORT" 1) ;;
    wrk-p16) line=$(run_wrk "$PORT" 16) ;;
    esac
    stop_server
    if [ -n "$line" ]; then
        echo "server=$kind impl=$impl load=$load $line" >>"$RES"
    else
        log "  $kind $impl $load: no result (see $OUT/servers-stderr.txt)"
    fi
}

HTTP_LOADS=(wisp-load wisp-load-p16)
[ "$HAVE_WRK" = 1 ] && HTTP_LOADS=(wrk wrk-p16 "${HTTP_LOADS[@]}")
total=$(((${#ECHO_IMPLS[@]} + ${#HTTP_IMPLS[@]} * ${#HTTP_LOADS[@]}) * REPS))
n=0
for ((r = 1; r <= REPS; r++)); do
    for impl in "${ECHO_IMPLS[@]}"; do
        n=$((n + 1))
        printf '\r[%3d/%3d] echo %-10s wisp-load      rep %d/%d ' "$n" "$total" "$impl" "$r" "$REPS" >&2
        one echo "$impl" wisp-load
    done
    for load in "${HTTP_LOADS[@]}"; do
        for impl in "${HTTP_IMPLS[@]}"; do
            n=$((n + 1))
            printf '\r[%3d/%3d] http %-10s %-14s rep %d/%d ' "$n" "$total" "$impl" "$load" "$r" "$REPS" >&2
            one http "$impl" "$load"
        done
    done
done
printf '\r%70s\r' '' >&2

# ---- the table ------------------------------------------------------------------
AGG='
function add(k, v) { vals[k] = vals[k] == "" ? v : vals[k] " " v }
function sorted(l, A,   n, i, j, t) { n = split(l, A, " "); for (i = 2; i <= n; i++) { t = A[i] + 0; for (j = i - 1; j >= 1 && A[j] + 0 > t; j--) A[j + 1] = A[j]; A[j + 1] = t } return n }
function med(l,   A, n) { n = sorted(l, A); return n % 2 ? A[(n + 1) / 2] : (A[n / 2] + A[n / 2 + 1]) / 2 }
function lo(l,   A) { sorted(l, A); return A[1] }
function hi(l,   A, n) { n = sorted(l, A); return A[n] }
{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    key = f["server"] SUBSEP f["load"]
    if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
    if (!((key SUBSEP f["impl"]) in iseen)) { iseen[key SUBSEP f["impl"]] = 1; impls[key] = impls[key] " " f["impl"] }
    add(key SUBSEP f["impl"] SUBSEP "rps", f["rps"]); add(key SUBSEP f["impl"] SUBSEP "p99", f["p99_us"])
    if (f["errors"] + 0 > 0) err[key SUBSEP f["impl"]] += f["errors"]
    delete f
}'
{
    echo "servers: $WORKERS workers each, 64 connections, loopback, ${SECONDS_PER_RUN} s per run, $REPS interleaved runs; median (min-max)"
    echo "requests per second (higher is better) and p99 latency in us (lower is better); ratio: wisp's rps / the peer's"
    awk "$AGG"'
    END {
        for (k = 1; k <= nk; k++) {
            key = order[k]; split(key, kl, SUBSEP)
            printf "\n%s, load %s\n", kl[1], kl[2]
            printf "  %-11s %32s %28s %s\n", "server", "rps", "p99 us", ""
            n = split(impls[key], I, " ")
            for (i = 1; i <= n; i++) {
                r = vals[key, I[i], "rps"]; p = vals[key, I[i], "p99"]
                printf "  %-11s %32s %28s%s\n", I[i], sprintf("%.0f (%.0f-%.0f)", med(r), lo(r), hi(r)),
                    sprintf("%.0f (%.0f-%.0f)", med(p), lo(p), hi(p)), err[key, I[i]] ? "  (errors!)" : ""
            }
            for (i = 1; i <= n; i++) {
                if (I[i] ~ /^wisp/) continue
                for (j = 1; j <= n; j++) {
                    if (I[j] !~ /^wisp/) continue
                    printf "  %s / %s: rps %.2fx, p99 %.2fx\n", I[j], I[i], med(vals[key, I[j], "rps"]) / med(vals[key, I[i], "rps"]),
                        med(vals[key, I[j], "p99"]) / med(vals[key, I[i], "p99"])
                }
            }
        }
    }' "$RES"
    echo
    echo "(targets: echo rps >= 1.3x tokio and go with a lower p99 (wisp), >= 1.0x tokio (wisp_epoll);"
    echo " http rps >= 1.0x nginx with wrk -t1 -c64, also 16 pipelined)"
} >"$OUT/servers.txt"

# ---- the chart: per workload and load, rps bars and p99 bars ---------------------
awk "$AGG"'
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); return s }
END {
    split("#d9480f #1c7ed6 #2f9e44 #ae3ec9 #f59f00", C, " ")
    bw = 18; gap = 70; left = 60; top = 60; h = 200; x = left
    for (k = 1; k <= nk; k++) { n = split(impls[order[k]], I, " "); width[k] = n * bw + gap; W += width[k] }
    W += left + 40; if (W < 1000) W = 1000
    H = top + 2 * (h + 70) + 40
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", W, H
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"24\" font-size=\"15\" font-weight=\"bold\">servers: requests per second (top: higher is better), p99 latency (bottom: lower is better)</text>\n", left
    printf "<text x=\"%d\" y=\"42\" fill=\"#555\">median of the runs, whiskers min-max; 2 workers each, 64 connections, loopback</text>\n", left
    for (panel = 0; panel < 2; panel++) {
        y0 = top + panel * (h + 70); what = panel ? "p99" : "rps"; x = left
        printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", left - 5, y0 + h, W - 20, y0 + h
        for (k = 1; k <= nk; k++) {
            key = order[k]; split(key, kl, SUBSEP); n = split(impls[key], I, " "); max = 0
            for (i = 1; i <= n; i++) { v = hi(vals[key, I[i], what]); if (v > max) max = v }
            for (i = 1; i <= n; i++) {
                l = vals[key, I[i], what]; m = med(l); bh = max ? h * m / max : 0; bx = x + (i - 1) * bw
                ci = I[i] == "wisp" ? 1 : I[i] == "wisp_epoll" ? 2 : I[i] == "tokio" ? 3 : I[i] == "go" ? 4 : 5
                printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"%s\"><title>%s %s %s: %s %.0f</title></rect>\n", bx, y0 + h - bh, bw - 2, bh, C[ci], kl[1], kl[2], I[i], what, m
                xm = bx + (bw - 2) / 2
                printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\"/>\n", xm, y0 + h - h * lo(l) / max, xm, y0 + h - h * hi(l) / max
                printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"8\" transform=\"rotate(-90 %.1f %.1f)\">%s</text>\n", xm + 3, y0 + h - bh - 3, xm + 3, y0 + h - bh - 3, what == "rps" ? sprintf("%.0fk", m / 1000) : sprintf("%.0f us", m)
            }
            printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s %s</text>\n", x + n * bw / 2, y0 + h + 16, kl[1], esc(kl[2])
            x += width[k]
        }
    }
    split("wisp wisp_epoll tokio go nginx", L, " ")
    for (i = 1; i <= 5; i++)
        printf "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n", left + (i - 1) * 100, H - 24, C[i], left + (i - 1) * 100 + 16, H - 14, L[i]
    printf "</svg>\n"
}' "$RES" >"$OUT/servers.svg"
cat "$OUT/servers.txt"
