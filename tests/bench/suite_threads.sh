#!/bin/sh
# green-run --threads against native pthreads: the same thread-per-connection
# echo server (plain pthreads and blocking sockets, nothing of libgreen), run
# natively and under `green-run --threads`, both pinned to one CPU (BENCH_CPU,
# default 0) and loaded from the other by an epoll client that holds N
# connections, each doing 64-byte request/echo round trips back to back.
#
#   sh tests/bench/suite_threads.sh BUILD
#
# Figures per N (THREADS_CONNS, default 100 1000 10000): requests/s over
# THREADS_SECONDS (3) s, the server's CPU time per request (from
# /proc/PID/stat, read by the client around the timed phase), and the
# server's memory per connection: its VmRSS
# once every connection has had its first echo (all N threads alive and
# blocked in read) minus its VmRSS before the first connection, over N.
# THREADS_ROUNDS (2) rounds interleave native and --threads runs; figures are
# medians. Targets (issue #8), at 10,000 connections: >= 1.0x the native
# throughput, >= 20x less memory per connection.
#
# The programs are the tests' (tests/monkey/threads/echo_server.c and
# echo_client.c), compiled with plain cc -pthread.
set -u
. "$(dirname "$0")/lib.sh"
bench_init "${1:-build}"

O=$BENCH_OUT
S=$BENCH_ROOT/tests/monkey/threads
GR=$BENCH_BUILD/green-run
CONNS=${THREADS_CONNS:-100 1000 10000}
SECONDS_RUN=${THREADS_SECONDS:-3}
ROUNDS=${THREADS_ROUNDS:-2}
SERVER_CPU=${BENCH_CPU:-0}
CLIENT_CPU=1
[ "$SERVER_CPU" = 1 ] && CLIENT_CPU=0
if command -v taskset >/dev/null 2>&1; then
    SPIN="taskset -c $SERVER_CPU"
    CPIN="taskset -c $CLIENT_CPU"
else
    SPIN="" CPIN=""
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo
echo "## green-run --threads: thread-per-connection echo server, native pthreads vs greenlets"
echo
echo "- server pinned to CPU $SERVER_CPU, client (epoll, 64-byte round trips) on CPU $CLIENT_CPU; ${SECONDS_RUN} s per run, $ROUNDS rounds (medians); fd limit $(ulimit -n)"
echo "- server: $(bench_rel "$S/echo_server.c"), default thread attributes (native: glibc's 8 MiB stacks; --threads: GREEN_STACK_SIZE, default 256 KiB)"

bench_build libgreen "$O/threads_echo_server" $CC -std=gnu11 $BENCH_CFLAGS -Wall -pthread "$S/echo_server.c" -o "$O/threads_echo_server"
bench_build libgreen "$O/threads_echo_client" $CC -std=gnu11 $BENCH_CFLAGS -Wall -pthread "$S/echo_client.c" -o "$O/threads_echo_client"
if [ ! -x "$GR" ] || [ ! -f "$BENCH_BUILD/libgreen-monkey.so" ]; then
    echo "error: $(bench_rel "$GR") or the shim is missing (make BUILD=... monkey)"
    BENCH_ERRORS=$((BENCH_ERRORS + 1))
fi

SERVER_PID=""
TMPD=$(mktemp -d)
stop_server() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
}
trap 'stop_server; rm -rf "$TMPD"' EXIT
trap 'stop_server; rm -rf "$TMPD"; exit 130' INT TERM

vmrss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null; }

# One run: MODE (native|threads) N -> results thr_{rps,kib}_MODE_N.
run_one() {
    mode=$1 n=$2
    rm -f "$TMPD/port"
    if [ "$mode" = native ]; then
        $SPIN "$O/threads_echo_server" "$TMPD/port" "$n" >"$TMPD/server.out" 2>&1 &
    else
        $SPIN "$GR" --threads "$O/threads_echo_server" "$TMPD/port" "$n" >"$TMPD/server.out" 2>&1 &
    fi
    SERVER_PID=$!
    i=0
    while [ ! -s "$TMPD/port" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    if [ ! -s "$TMPD/port" ]; then
        echo "  !! $mode server did not start"; stop_server
        BENCH_ERRORS=$((BENCH_ERRORS + 1)); return
    fi
    sleep 0.1
    base=$(vmrss "$SERVER_PID")
    echo "  \$ ${SPIN:+$SPIN }$([ "$mode" = threads ] && echo "$(bench_rel "$GR") --threads ")$(bench_rel "$O/threads_echo_server") PORTFILE $n  &  ${CPIN:+$CPIN }$(bench_rel "$O/threads_echo_client") PORT $n 64 $SECONDS_RUN PID"
    timeout 300 $CPIN "$O/threads_echo_client" "$(cat "$TMPD/port")" "$n" 64 "$SECONDS_RUN" "$SERVER_PID" >"$TMPD/client.out" 2>&1
    crc=$?
    i=0
    while kill -0 "$SERVER_PID" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    stop_server
    cat "$TMPD/client.out" "$TMPD/server.out" >>"$BENCH_LOG"
    rss=$(sed -n 's/^rss_kb=\([0-9]*\).*/\1/p' "$TMPD/client.out")
    rps=$(sed -n 's/.* rps=\([0-9]*\)$/\1/p' "$TMPD/client.out")
    cpu=$(sed -n 's/.* server_cpu_us=\([0-9.]*\) .*/\1/p' "$TMPD/client.out")
    th=$(sed -n 's/.* threads=\([0-9]*\)$/\1/p' "$TMPD/client.out")
    if [ $crc != 0 ] || [ -z "$rps" ] || [ -z "$rss" ] || ! grep -q ' bad=0 ' "$TMPD/client.out"; then
        echo "      !! client exit $crc:"; sed 's/^/      | /' "$TMPD/client.out" | tail -5
        BENCH_ERRORS=$((BENCH_ERRORS + 1)); return
    fi
    kib=$(awk -v a="$rss" -v b="$base" -v n="$n" 'BEGIN { printf "%.3f", (a - b) / n }')
    us=$(awk -v r="$rps" 'BEGIN { printf "%.4f", 1e6 / r }')
    echo "      # $rps requests/s, server CPU ${cpu} µs per request; server VmRSS $base -> $rss KiB with $n connections (${kib} KiB each), $th OS thread(s)"
    {
        echo "thr_rps_${mode}_$n $rps"
        echo "thr_us_${mode}_$n $us"
        [ -n "$cpu" ] && echo "thr_us_${mode}_$n@cpu $cpu"
        echo "thr_kib_${mode}_$n $kib"
    } >>"$BENCH_RESULTS"
}

bench_section "Echo server at 100, 1,000 and 10,000 connections"
r=1
while [ $r -le "$ROUNDS" ]; do
    for n in $CONNS; do
        run_one native "$n"
        run_one threads "$n"
    done
    r=$((r + 1))
done
echo
echo "µs per request: wall clock over the run (1e6 / requests/s); the last column compares the"
echo "server's CPU time per request (utime + stime from /proc/PID/stat), which stays meaningful"
echo "when other processes share the machine."
echo
bench_table_head cpu
for n in $CONNS; do
    bench_row "requests/s, $n conns (--threads vs native)" "thr_rps_threads_$n" "native pthreads" libgreen "thr_rps_native_$n"
    if [ "$n" = 10000 ]; then
        bench_row "µs per request, $n conns" "thr_us_threads_$n" "native pthreads" libgreen "thr_us_native_$n" le 1.0
        bench_row "KiB RSS per connection, $n conns" "thr_kib_threads_$n" "native pthreads" libgreen "thr_kib_native_$n" le 0.05
    else
        bench_row "µs per request, $n conns" "thr_us_threads_$n" "native pthreads" libgreen "thr_us_native_$n"
        bench_row "KiB RSS per connection, $n conns" "thr_kib_threads_$n" "native pthreads" libgreen "thr_kib_native_$n"
    fi
done
echo
echo "Targets: throughput >= 1.0x native (µs per request <= 1.0x native) and >= 20x less memory per"
echo "connection (<= 0.05x native) at 10,000 connections. RSS counts the pages each thread touched:"
echo "natively the top of its 8 MiB stack (its frames, the 4 KiB read buffer, glibc's thread"
echo "descriptor); under --threads the greenlet's stack pages and its records. A native thread's"
echo "kernel stack and task struct (about 20 KiB more each) are not in RSS."

bench_finish
