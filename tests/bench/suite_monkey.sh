#!/bin/sh
# The monkey shim's benchmark: what the shim costs where nothing waits, and
# what it wins where everything does, each measured with and without the shim
# in one run, pinned to one CPU (servers on the other).
#
#   1. read/write ping on a socketpair whose data is always there, in a
#      greenlet (the shim's cooperative path) and on a thread with no hub (its
#      pass-through): ns per call (monkey/calls.c);
#   2. poll() with a timeout on descriptors already ready: ns per call;
#   3. a whole program: `curl` downloading a 1 GiB (sparse) file from a local
#      nginx to /dev/null, with and without green-run: wall and CPU time
#      (monkey/timeit.c runs it and reads the child's rusage);
#   4. the concurrency win: libpq queries per second, 100 greenlets each with
#      its own blocking connection (PQexec, linked with -lgreen-monkey)
#      against one blocking connection doing the same queries in turn
#      (monkey/pgqps.c), on `select pg_sleep(0.05)` and on `select 1`.
#
#   sh tests/bench/suite_monkey.sh BUILD
#
# Targets: the shim's overhead <= 5 % on 1-3. Measurements 1-3 run in
# interleaved rounds (without, with; then with, without; ...); an overhead is
# the median of the per-round ratios, which a drifting machine load does not
# bias. On the shared 2-CPU VMs the figures move by about ±5 % between runs
# of the suite. nginx,
# PostgreSQL and the temporary directory come from tests/monkey/servers.sh
# and are stopped on exit.
#
# Environment: MONKEY_ROUNDS (default 5 for 1-2, 9 for curl, 3 for libpq:
# a number overrides all three), plus lib.sh's
# BENCH_CPU, BENCH_TIMEOUT, BENCH_STRICT.
set -u
. "$(dirname "$0")/lib.sh"
bench_init "${1:-build}"

O=$BENCH_OUT
S=$BENCH_SRC/monkey
GR=$BENCH_BUILD/green-run
ROUNDS=${MONKEY_ROUNDS:-5}
CURL_ROUNDS=${MONKEY_ROUNDS:-9}
PG_ROUNDS=${MONKEY_ROUNDS:-3}
RW_N=100000    # pings (2 calls each) per run
POLL_N=200000  # polls per run
RUNS=5         # runs per invocation (the program reports their median)
MAX_OVERHEAD=5 # %

echo
echo "## Monkey shim benchmark (libgreen-monkey.so)"
echo

# The shim is not part of `make lib` (what `make bench` builds): make it here.
if [ ! -f "$BENCH_BUILD/libgreen-monkey.so" ] || [ ! -x "$GR" ]; then
    echo "building the shim: make BUILD=$(bench_rel "$BENCH_BUILD") monkey"
    make --no-print-directory -C "$BENCH_ROOT" BUILD="$BENCH_BUILD" monkey >>"$BENCH_LOG" 2>&1 ||
        echo "make monkey FAILED (see $(bench_rel "$BENCH_LOG"))"
fi

pkgv() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
echo "- machine: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs, Linux $(uname -r)"
echo "- curl $(pkgv curl), nginx $(pkgv nginx-common), PostgreSQL $(pkgv postgresql), libpq $(pkgv libpq5)"

# --------------------------------------------------------------------------
# Build: against libgreen.so (the shim's libgreen), never libgreen.a, which
# would give the program a second hub beside the shim's.
# --------------------------------------------------------------------------
bench_build_so() { # OUT SRC [LIBS...]
    _o=$1 _s=$2
    shift 2
    bench_build libgreen "$_o" $CC -std=gnu11 $BENCH_CFLAGS -Wall -Wextra -I"$BENCH_ROOT/include" \
        "$_s" -o "$_o" -L"$BENCH_BUILD" -Wl,--no-as-needed "$@" -lgreen -Wl,--as-needed \
        -Wl,-rpath,"$BENCH_BUILD"
}
bench_build_so "$O/monkey_calls" "$S/calls.c"
bench_build libgreen "$O/monkey_timeit" $CC -std=gnu11 $BENCH_CFLAGS -Wall -Wextra "$S/timeit.c" -o "$O/monkey_timeit"
# shellcheck disable=SC2046
bench_build_so "$O/monkey_pgqps" "$S/pgqps.c" -lgreen-monkey \
    $(pkg-config --cflags --libs libpq 2>/dev/null || echo -I/usr/include/postgresql -lpq)
echo "built into $(bench_rel "$O")/ (commands in $(bench_rel "$BENCH_LOG"))"

# --------------------------------------------------------------------------
# Servers, on the other CPU
# --------------------------------------------------------------------------
client_cpu=${BENCH_CPU:-0}
server_cpu=1
[ "$client_cpu" = 1 ] && server_cpu=0
SRV_PIN=""
if [ -n "$BENCH_PIN" ] && [ "$(nproc)" -ge 2 ]; then
    SRV_PIN="taskset -c $server_cpu"
fi
. "$BENCH_ROOT/tests/monkey/servers.sh"
srv_init
srv_where="unpinned"
[ -n "$SRV_PIN" ] && srv_where="pinned to CPU $server_cpu"
echo "- servers (nginx, PostgreSQL) $srv_where; clients ${BENCH_PIN:+pinned to CPU $client_cpu}"

# Per-round ratios: KEY's value in this round over BASE_KEY's, kept as
# "pair:KEY/BASE_KEY" (their median is the row's ratio).
round_begin() {
    _round_lines=$(wc -l <"$BENCH_RESULTS")
}
round_pair() { # KEY BASE_KEY
    _a=$(tail -n +$((_round_lines + 1)) "$BENCH_RESULTS" | awk -v k="$1" '$1 == k { v = $2 } END { print v }')
    _b=$(tail -n +$((_round_lines + 1)) "$BENCH_RESULTS" | awk -v k="$2" '$1 == k { v = $2 } END { print v }')
    if [ -n "$_a" ] && [ -n "$_b" ]; then
        echo "pair:$1/$2 $(awk -v a="$_a" -v b="$_b" 'BEGIN { printf "%.6f", a / b }')" >>"$BENCH_RESULTS"
    fi
}
round_pairs() { # KEY BASE_KEY: the wall-clock and the CPU-time pair
    round_pair "$1" "$2"
    round_pair "$1@cpu" "$2@cpu"
}

# bench_run for a program that waits on a server (curl, libpq): a CPU share
# below 90 % is its waiting, not other processes, so it is not counted as
# noise (the CPU-time figures are the ones to read on a busy machine).
run_waiting() {
    _noisy=$BENCH_NOISY
    bench_run "$@" >"$BENCH_OUT/.waiting.$$"
    BENCH_NOISY=$_noisy
    sed 's/  <- busy machine: this program got only \([0-9]*\) % of its CPU$/  (it waits on the server)/' \
        "$BENCH_OUT/.waiting.$$"
    rm -f "$BENCH_OUT/.waiting.$$"
}

# "+1.2 %" from a ratio; empty stays —.
overhead_pct() {
    awk -v r="$1" 'BEGIN { if (r == "") { print "—"; exit } printf "%+.1f %%\n", (r - 1) * 100 }'
}
overhead_verdict() { # RATIO MAX_PCT
    if [ -z "$1" ]; then
        echo "MISS (no result)"
    else
        awk -v r="$1" -v m="$2" 'BEGIN { print ((r - 1) * 100 <= m) ? "PASS" : "MISS" }'
    fi
}

# A row of the overhead table: the same measurement with the shim (KEY) and
# without it (BASE_KEY), lower is better. MAX_PCT empty: no target.
overhead_head() {
    echo "| measurement | without the shim | with the shim | overhead | target | verdict | on CPU time: without vs with, overhead, verdict |"
    echo "|---|---|---|---|---|---|---|"
}
overhead_row() { # METRIC KEY BASE_KEY [MAX_PCT]
    _w=$(bench_get "$2")
    _p=$(bench_get "$3")
    _rat=$(bench_get "pair:$2/$3")
    [ -z "$_rat" ] && [ -n "$_w" ] && [ -n "$_p" ] && _rat=$(awk -v a="$_w" -v b="$_p" 'BEGIN { printf "%.6f", a / b }')
    _cw=$(bench_get "$2@cpu")
    _cp=$(bench_get "$3@cpu")
    _crat=$(bench_get "pair:$2@cpu/$3@cpu")
    [ -z "$_crat" ] && [ -n "$_cw" ] && [ -n "$_cp" ] && _crat=$(awk -v a="$_cw" -v b="$_cp" 'BEGIN { printf "%.6f", a / b }')
    _wf=$(bench_fmt "$_w")
    [ -z "$_w" ] && _wf="no result"
    _pf=$(bench_fmt "$_p")
    [ -z "$_p" ] && _pf="no result"
    _ov=$(overhead_pct "$_rat")
    # The table reads "without vs with"; the summary, like every suite's,
    # gives libgreen's figure (here: with the shim) first.
    _cc="—"
    _cs="—"
    if [ -n "$_cw" ]; then
        _cc="$(bench_fmt "$_cp") vs $(bench_fmt "$_cw"), $(overhead_pct "$_crat")"
        _cs="$(bench_fmt "$_cw") vs $(bench_fmt "$_cp"), overhead $(overhead_pct "$_crat")"
    fi
    _tt="—"
    _v="—"
    if [ -n "${4:-}" ]; then
        _tt="≤ +$4 %"
        _v=$(overhead_verdict "$_rat" "$4")
        case $_v in MISS*) BENCH_MISSED=$((BENCH_MISSED + 1)) ;; esac
        if [ -n "$_crat" ]; then
            _cv=$(overhead_verdict "$_crat" "$4")
            case $_cv in MISS*) BENCH_MISSED_CPU=$((BENCH_MISSED_CPU + 1)) ;; esac
            _cc="$_cc, $_cv"
            _cs="$_cs, $_cv"
        fi
        echo "| $1 | without the shim | $_wf vs $_pf | overhead $_ov | $_tt | $_v | $_cs |" >>"$BENCH_SUMMARY"
    fi
    echo "| $1 | $_pf | $_wf | $_ov | $_tt | $_v | $_cc |"
}

# --------------------------------------------------------------------------
# 1-2. Calls that never wait
# --------------------------------------------------------------------------
bench_section "1-2. Calls that never wait, with and without the shim (ns per call)"
echo "The same binary (linked with libgreen.so) runs without the shim and under green-run. \"In a"
echo "greenlet\": the calls run in a spawned greenlet, where the shim takes its cooperative path (a"
echo "non-blocking try that succeeds: MSG_DONTWAIT for sockets, a zero-timeout poll). \"No hub\": on"
echo "the thread's main greenlet before any hub exists, where the shim passes them to libc."
echo "Ping: write 1 byte into one end of a socketpair, read it from the other, $RW_N times per run;"
echo "poll: two descriptors with data pending, timeout 1000 ms, $POLL_N times per run; $RUNS runs per"
echo "invocation (median), $ROUNDS interleaved rounds, each side first in every other round."
echo
# Odd rounds run without the shim first, even rounds with it first, so that
# a drift of the machine (caches warming, a neighbour starting) does not
# favour one side.
calls_run() { # plain|shim MODE N KEY_BASE [main]
    if [ "$1" = plain ]; then
        bench_run libgreen "$O/monkey_calls" "$2" "$3" $RUNS "${4}_plain${5:+_main}_ns" ${5:+"$5"}
    else
        bench_run libgreen "$GR" "$O/monkey_calls" "$2" "$3" $RUNS "${4}_shim${5:+_main}_ns" ${5:+"$5"}
    fi
}
calls_pair() { # MODE N KEY_BASE [main]
    if [ $((r % 2)) = 1 ]; then
        calls_run plain "$@"
        calls_run shim "$@"
    else
        calls_run shim "$@"
        calls_run plain "$@"
    fi
}
r=1
while [ $r -le "$ROUNDS" ]; do
    round_begin
    calls_pair rw $RW_N monkey_rw
    calls_pair rw $RW_N monkey_rw main
    calls_pair poll $POLL_N monkey_poll
    round_pairs monkey_rw_shim_ns monkey_rw_plain_ns
    round_pairs monkey_rw_shim_main_ns monkey_rw_plain_main_ns
    round_pairs monkey_poll_shim_ns monkey_poll_plain_ns
    r=$((r + 1))
done
echo
overhead_head
overhead_row "read/write ping on a ready socketpair, in a greenlet, ns per call" monkey_rw_shim_ns monkey_rw_plain_ns $MAX_OVERHEAD
overhead_row "poll() on ready fds, in a greenlet, ns per call" monkey_poll_shim_ns monkey_poll_plain_ns $MAX_OVERHEAD
overhead_row "read/write ping, no hub (pass-through), ns per call" monkey_rw_shim_main_ns monkey_rw_plain_main_ns

# --------------------------------------------------------------------------
# 3. A whole program: curl, 1 GiB
# --------------------------------------------------------------------------
bench_section "3. curl downloading 1 GiB from a local nginx to /dev/null, with and without green-run (s)"
echo "\`curl -s -o /dev/null URL\` of a sparse 1 GiB file (nginx, sendfile). curl never spawns a"
echo "greenlet: under green-run every interposed call it makes passes to libc after one check, and"
echo "loading the shim (libgreen.so, libev) adds to its start-up. Wall clock, and CPU time (user +"
echo "system of the curl process, from wait4); one warm-up, then $CURL_ROUNDS interleaved rounds, each"
echo "side first in every other round. Loopback transfers of 1 GiB vary by ±20 % from run to run"
echo "here whatever runs them: the overhead is the median of the per-round ratios."
echo
if ! command -v curl >/dev/null 2>&1; then
    echo "curl: skipped (not installed)"
elif ! srv_start_nginx 1073741824 >>"$BENCH_LOG" 2>&1; then
    echo "nginx did not start (see $(bench_rel "$BENCH_LOG"))"
    BENCH_ERRORS=$((BENCH_ERRORS + 1))
else
    BIG=$NGINX_URL/big
    echo "nginx: $BIG"
    run_waiting libgreen "$O/monkey_timeit" monkey_curl_warmup_s curl -s -o /dev/null "$BIG"
    r=1
    while [ $r -le "$CURL_ROUNDS" ]; do
        round_begin
        if [ $((r % 2)) = 1 ]; then
            run_waiting libgreen "$O/monkey_timeit" monkey_curl_plain_s curl -s -o /dev/null "$BIG"
            run_waiting libgreen "$O/monkey_timeit" monkey_curl_shim_s "$GR" curl -s -o /dev/null "$BIG"
        else
            run_waiting libgreen "$O/monkey_timeit" monkey_curl_shim_s "$GR" curl -s -o /dev/null "$BIG"
            run_waiting libgreen "$O/monkey_timeit" monkey_curl_plain_s curl -s -o /dev/null "$BIG"
        fi
        round_pairs monkey_curl_shim_s monkey_curl_plain_s
        r=$((r + 1))
    done
fi
echo
overhead_head
overhead_row "curl, 1 GiB to /dev/null, s" monkey_curl_shim_s monkey_curl_plain_s $MAX_OVERHEAD

# --------------------------------------------------------------------------
# 4. The concurrency win: libpq
# --------------------------------------------------------------------------
bench_section "4. libpq queries per second: 100 greenlets with a connection each vs one blocking connection"
echo "monkey_pgqps, linked with -lgreen-monkey: each greenlet calls the blocking PQexec in a loop,"
echo "as a program that knows nothing of greenlets would; the shim turns libpq's poll/recv/send into"
echo "waits on the hub. Connections are opened (and warmed with one query) before the clock starts."
echo "The baseline is the same blocking PQexec loop on one connection, no greenlets. PostgreSQL over"
echo "its unix socket, ${SRV_PIN:+pinned to one CPU, }$PG_ROUNDS rounds. Where a query waits (pg_sleep), 100 connections"
echo "overlap 100 waits; a cheap query is bound by the server's CPU, where 100 backends only add"
echo "their switching (pgbench -c 100 gets the same here): concurrency wins nothing there. The last"
echo "row is the shim's own cost: one greenlet, where every PQexec parks on the hub until the"
echo "answer comes, against the same loop with no greenlet."
echo
SLEEP_SQL="select pg_sleep(0.05)"
CHEAP_SQL="select 1"
if ! srv_start_pg >>"$BENCH_LOG" 2>&1; then
    echo "PostgreSQL did not start (see $(bench_rel "$BENCH_LOG"))"
    BENCH_ERRORS=$((BENCH_ERRORS + 1))
else
    r=1
    while [ $r -le "$PG_ROUNDS" ]; do
        run_waiting libgreen "$O/monkey_pgqps" green "$PG_CONNINFO" 100 10 "$SLEEP_SQL" monkey_pg_sleep_green_qps
        run_waiting libgreen "$O/monkey_pgqps" seq "$PG_CONNINFO" 20 "$SLEEP_SQL" monkey_pg_sleep_seq_qps
        run_waiting libgreen "$O/monkey_pgqps" green "$PG_CONNINFO" 100 40 "$CHEAP_SQL" monkey_pg_cheap_green_qps
        run_waiting libgreen "$O/monkey_pgqps" seq "$PG_CONNINFO" 4000 "$CHEAP_SQL" monkey_pg_cheap_seq_qps
        run_waiting libgreen "$O/monkey_pgqps" green "$PG_CONNINFO" 1 4000 "$CHEAP_SQL" monkey_pg_cheap_one_qps
        r=$((r + 1))
    done
fi
echo
echo "| queries | greenlets (shim), queries/s | one blocking connection, queries/s | greenlets/one | target | verdict |"
echo "|---|---|---|---|---|---|"
pg_row() { # LABEL GREEN_KEY SEQ_KEY [MIN_RATIO]
    _g=$(bench_get "$2")
    _s=$(bench_get "$3")
    _gf=$(bench_fmt "$_g")
    [ -z "$_g" ] && _gf="no result"
    _sf=$(bench_fmt "$_s")
    [ -z "$_s" ] && _sf="no result"
    _r=$(bench_ratio "$_g" "$_s")
    _tt="—"
    _v="—"
    if [ -n "${4:-}" ]; then
        _tt="≥ $4×"
        if [ -z "$_g" ] || [ -z "$_s" ]; then
            _v="MISS (no result)"
        else
            _v=$(awk -v g="$_g" -v s="$_s" -v m="$4" 'BEGIN { print (g / s >= m) ? "PASS" : "MISS" }')
        fi
        case $_v in MISS*) BENCH_MISSED=$((BENCH_MISSED + 1)) ;; esac
        echo "| libpq $1, queries/s (shim) | one blocking connection | $_gf vs $_sf | ${_r}× | $_tt | $_v | — |" >>"$BENCH_SUMMARY"
    fi
    echo "| $1 | $_gf | $_sf | ${_r}× | $_tt | $_v |"
}
pg_row "\`$SLEEP_SQL\`, 100 greenlets" monkey_pg_sleep_green_qps monkey_pg_sleep_seq_qps 10
pg_row "\`$CHEAP_SQL\`, 100 greenlets (server-bound)" monkey_pg_cheap_green_qps monkey_pg_cheap_seq_qps
pg_row "\`$CHEAP_SQL\`, 1 greenlet (the shim's cost per query)" monkey_pg_cheap_one_qps monkey_pg_cheap_seq_qps

srv_stop_all
bench_finish
