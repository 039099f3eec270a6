#!/bin/sh
# The toolbox benchmarks: queue throughput (gevent's boss/worker) against Go
# buffered channels and gevent's Queue, and Event / Semaphore hand-off
# latency against State Threads condition variables and libgreen's own
# green_yield ping-pong, pinned to one CPU.
#
#   sh tests/bench/suite_toolbox.sh BUILD [queue|handoff]
#
# Run by tests/bench/run.sh with the others, or alone: then, as root, it
# installs the peers that are missing itself (apt-get); a peer still missing
# gets "skipped (not installed)" in its rows. Programs come from
# tests/bench/toolbox/ and are built into BUILD/bench/. Figures are medians:
# each program repeats its measurement 5 times in-process, and the libgreen,
# Go and State Threads programs are started 3 times, interleaved with the
# peer they are compared with, so that the machine's noise falls on both.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)

# --------------------------------------------------------------------------
# Peers (this suite's own check, so that it runs alone on a fresh machine)
# --------------------------------------------------------------------------
tb_have_pkg() {
    case $1 in
        libst-dev) [ -f /usr/include/st.h ] ;;
        golang-go) command -v go >/dev/null 2>&1 ;;
        python3-gevent) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import gevent' 2>/dev/null ;;
        util-linux) command -v taskset >/dev/null 2>&1 ;;
        time) [ -x /usr/bin/time ] ;;
    esac
}
tb_missing=""
for p in libst-dev golang-go python3-gevent util-linux time; do
    tb_have_pkg "$p" || tb_missing="$tb_missing $p"
done
if [ -n "$tb_missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "toolbox: installing$tb_missing"
        tb_log=/tmp/libgreen-bench-toolbox-apt.log
        export DEBIAN_FRONTEND=noninteractive
        if apt-get update -qq >"$tb_log" 2>&1; then
            for p in $tb_missing; do
                apt-get install -y -qq --no-install-recommends "$p" >>"$tb_log" 2>&1 ||
                    echo "toolbox: could not install $p (see $tb_log)"
            done
        else
            echo "toolbox: apt-get update failed (see $tb_log)"
        fi
    else
        echo "toolbox: missing$tb_missing (not root or no apt-get: not installing)"
    fi
fi

. "$HERE/lib.sh"
bench_init "${1:-build}"
ONLY=${2:-all}
want() { [ "$ONLY" = all ] || [ "$ONLY" = "$1" ]; }

O=$BENCH_OUT
S=$BENCH_SRC/toolbox

echo
echo "## Toolbox benchmarks (queues, Event, Semaphore)"
echo
echo "- machine: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs, Linux $(uname -r)"
echo "- pinned: ${BENCH_PIN:-NO (taskset missing)}; GOMAXPROCS=$GOMAXPROCS; libgreen: $(bench_rel "$BENCH_BUILD")/libgreen.a, ${BENCH_CFLAGS}"
pkgv() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
echo "- peers: $(go version 2>/dev/null | cut -d' ' -f3 || echo 'go ?'), gevent $(pkgv python3-gevent) (${BENCH_PY:-no python with gevent}), State Threads $(pkgv libst-dev)"
echo

for p in st go gevent; do bench_need $p; done
bench_build_c "$O/toolbox_green" "$S/green_toolbox.c"
bench_build_peer_c st "$O/toolbox_st" "$S/st_cond.c" -lst
bench_build_go "$O/toolbox_go" "$S/go/main.go"
echo "built into $(bench_rel "$O")/ (commands in $(bench_rel "$BENCH_LOG"))"

QUEUE_N=200000   # items per run (the boss/worker figure of PEERS.md)
PP_N=2000000     # ping-pong rounds per run (two hand-offs each)
ST_PP_N=2000000

# The verdict of a throughput target: libgreen/peer >= BOUND.
tb_ips_verdict() { # LG PEER BOUND
    awk -v l="$1" -v p="$2" -v b="$3" 'BEGIN { print ((l / p >= b) ? "PASS" : "MISS") }'
}

# A throughput row: higher is better, so the target is libgreen/peer >= BOUND
# (lib.sh's kinds are for times). Same columns as bench_row after
# `bench_table_head cpu`, the last one on CPU time (KEY@cpu); the row also
# goes to the summary.
tb_row_ips() { # METRIC LG_KEY PEER_LABEL PEER PEER_KEY BOUND
    _lg=$(bench_get "$2")
    _pv=$(bench_get "$5")
    if [ -n "$_pv" ]; then
        _pf=$(bench_fmt "$_pv")
    elif bench_peer_ok "$4"; then
        _pf="no result (run failed, see log)"
    else
        _pf=$(bench_peer_reason "$4")
    fi
    _lf=$(bench_fmt "$_lg")
    [ -z "$_lg" ] && _lf="no result"
    _r1=$(bench_ratio "$_lg" "$_pv")
    _r2=$(bench_ratio "$_pv" "$_lg")
    _tt="≥ $6× peer's items/s"
    if [ -z "$_lg" ]; then
        _v="MISS (no result)"
    elif [ -z "$_pv" ]; then
        _v="n/a: $_pf"
    else
        _v=$(tb_ips_verdict "$_lg" "$_pv" "$6")
    fi
    case $_v in MISS*) BENCH_MISSED=$((BENCH_MISSED + 1)) ;; esac
    _cl=$(bench_get "$2@cpu")
    _cp=$(bench_get "$5@cpu")
    if [ -n "$_cl" ] && [ -n "$_cp" ]; then
        _cv=$(tb_ips_verdict "$_cl" "$_cp" "$6")
        case $_cv in MISS*) BENCH_MISSED_CPU=$((BENCH_MISSED_CPU + 1)) ;; esac
        _cc="$(bench_fmt "$_cl") vs $(bench_fmt "$_cp"), libgreen/peer $(bench_ratio "$_cl" "$_cp"), $_cv"
    else
        _cc="—"
    fi
    echo "| $1 | $_lf | $3 | $_pf | $_r1 | $_r2 | $_tt | $_v | $_cc |"
    echo "| $1 | $3 | $_lf vs $_pf items/s | libgreen/peer $_r1 | $_tt | $_v | $_cc |" >>"$BENCH_SUMMARY"
}

# --------------------------------------------------------------------------
# 1. Boss/worker queue throughput
# --------------------------------------------------------------------------
if want queue; then
    bench_section "1. Boss/worker queue throughput: 1 producer -> queue -> 3 consumers, N=$QUEUE_N (items/s)"
    echo "gevent's \"Assigning Jobs in Queue\": the boss puts N items, three workers take them until"
    echo "the queue is closed (Go: close(ch) and range; gevent: a StopIteration per worker). Bounded:"
    echo "maxsize 3 / chan cap 3; unbounded: maxsize 0 / Queue() / chan cap N (never blocks the boss)."
    echo "Each run checks that every item arrived exactly once. Higher is better. The last column"
    echo "gives the same comparison per second of CPU time, which other processes on the CPU do not inflate."
    echo
    for i in 1 2 3; do
        bench_run libgreen "$O/toolbox_green" queue 3 $QUEUE_N 5
        bench_run go "$O/toolbox_go" 3 $QUEUE_N 5
        bench_run libgreen "$O/toolbox_green" queue 0 $QUEUE_N 5
        bench_run go "$O/toolbox_go" $QUEUE_N $QUEUE_N 5
    done
    bench_run gevent "$BENCH_PY" "$S/gevent_queue.py" 3 $QUEUE_N 5
    bench_run gevent "$BENCH_PY" "$S/gevent_queue.py" 0 $QUEUE_N 5
    echo
    bench_table_head cpu
    tb_row_ips "queue maxsize 3" green_queue_bounded_ips "Go chan cap 3" go go_chan_cap3_ips 2
    tb_row_ips "queue maxsize 3" green_queue_bounded_ips "gevent Queue(maxsize=3)" gevent gevent_queue_bounded_ips 30
    tb_row_ips "queue unbounded" green_queue_unbounded_ips "Go chan cap N" go go_chan_capN_ips 2
    tb_row_ips "queue unbounded" green_queue_unbounded_ips "gevent Queue()" gevent gevent_queue_unbounded_ips 30
fi

# --------------------------------------------------------------------------
# 2. Event and Semaphore hand-off latency
# --------------------------------------------------------------------------
if want handoff; then
    bench_section "2. Event wake-up and Semaphore hand-off between two greenlets (ns per hand-off)"
    echo "Two greenlets pass the turn back and forth, $PP_N rounds per run: Event (wait on its own,"
    echo "clear it, set the other's), Semaphore (acquire its own, release the other's), against a"
    echo "bare green_yield ping-pong (the scheduler alone) and State Threads' st_cond_wait +"
    echo "st_cond_signal hand-off. In every ping-pong both sides run the same function. Lower is"
    echo "better; the last column is on CPU time."
    echo
    for i in 1 2 3; do
        bench_run libgreen "$O/toolbox_green" yield $PP_N 5
        bench_run libgreen "$O/toolbox_green" sem $PP_N 5
        bench_run libgreen "$O/toolbox_green" event $PP_N 5
        bench_run st "$O/toolbox_st" $ST_PP_N 5
    done
    echo
    bench_table_head cpu
    bench_row "Semaphore hand-off" green_sem_ns "libgreen green_yield ping-pong" libgreen green_yield_pp_ns le 2
    bench_row "Event wake-up" green_event_ns "libgreen green_yield ping-pong" libgreen green_yield_pp_ns
    bench_row "Semaphore hand-off" green_sem_ns "ST st_cond_signal/wait hand-off" st st_cond_pp_ns
    bench_row "Event wake-up" green_event_ns "ST st_cond_signal/wait hand-off" st st_cond_pp_ns
    bench_row "green_yield ping-pong" green_yield_pp_ns "ST st_cond_signal/wait hand-off" st st_cond_pp_ns
fi

bench_finish
