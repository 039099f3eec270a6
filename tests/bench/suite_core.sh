#!/bin/sh
# The core benchmarks: context switch, scheduler, spawn/join, memory, and a
# million greenlets, against Boost.Context, glibc ucontext, State Threads,
# Go and gevent, all in one run, pinned to one CPU.
#
#   sh tests/bench/suite_core.sh BUILD [switch|yield|spawn|batch|mem|million]
#
# The second argument runs one measurement alone (with the peer runs it
# needs). Programs come from tests/bench/core/ and are built into BUILD/bench/.
# Figures are medians: each program repeats its measurement (5 runs, or
# rounds), and the short ones are invoked several times, interleaved with the
# peer they are compared with, so that the machine's noise falls on both.
set -u
. "$(dirname "$0")/lib.sh"
bench_init "${1:-build}"
ONLY=${2:-all}
want() { [ "$ONLY" = all ] || [ "$ONLY" = "$1" ]; }

O=$BENCH_OUT
S=$BENCH_SRC/core
PY=$S/gevent_bench.py

echo
echo "## Core benchmarks"
echo
echo "- machine: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs, Linux $(uname -r)"
echo "- pinned: ${BENCH_PIN:-NO (taskset missing)}; GOMAXPROCS=$GOMAXPROCS; libgreen: $(bench_rel "$BENCH_BUILD")/libgreen.a, ${BENCH_CFLAGS}"
pkgv() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
echo "- peers: Boost.Context $(pkgv libboost-context-dev), State Threads $(pkgv libst-dev), $(go version 2>/dev/null | cut -d' ' -f3 || echo 'go ?'), gevent $(pkgv python3-gevent) / greenlet $(pkgv python3-greenlet) (${BENCH_PY:-no python with gevent}), glibc $(ldd --version 2>/dev/null | sed -n '1s/.* //p')"
echo

# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------
for p in boost st go gevent greenlet; do bench_need $p; done
bench_build_c "$O/core_arch_switch" "$S/arch_switch.c"
bench_build_c "$O/core_green" "$S/green_bench.c"
bench_build_peer_c ucontext "$O/core_ucontext" "$S/ucontext_switch.c"
bench_build_peer_cxx boost "$O/core_boost" "$S/boost_switch.cpp" -lboost_context
bench_build_peer_c st "$O/core_st" "$S/st_bench.c" -lst
bench_build_go "$O/core_go" "$S/go/main.go"
echo "built into $(bench_rel "$O")/ (commands in $(bench_rel "$BENCH_LOG"))"

# Sizes: chosen so that each invocation takes well under a few seconds here.
SW_N=10000000    # raw switch round trips per run (two switches each)
UC_N=200000      # swapcontext round trips per run
YIELD_N=5000000  # yields per greenlet per run
GO_YIELD_N=2000000
ST_COND_N=5000000
ST_USLEEP_N=300000
PY_SWITCH_N=1000000
PY_SLEEP_N=100000
SPAWN_N=1000000  # sequential spawn+join per run
PY_SPAWN_N=5000  # gevent: ~150 µs each here (an mmap+munmap per greenlet)
BATCH_N=100000
PY_BATCH_N=20000 # gevent: ~3 s per 20,000 here
MEM_N=100000
MILLION_N=1000000

# --------------------------------------------------------------------------
# 1. Raw context switch
# --------------------------------------------------------------------------
run_switch_peers() {
    for i in 1 2 3; do
        bench_run libgreen "$O/core_arch_switch" same $SW_N 5
        bench_run boost "$O/core_boost" same $SW_N 5
        bench_run libgreen "$O/core_arch_switch" mxcsr $SW_N 5
        bench_run boost "$O/core_boost" mxcsr $SW_N 5
    done
    bench_run ucontext "$O/core_ucontext" same $UC_N 5
    bench_run ucontext "$O/core_ucontext" mxcsr $UC_N 5
}

if want switch; then
    bench_section "1. Context switch, ping-pong between two contexts (ns per switch)"
    echo "libgreen's assembly switch alone (green__ctx_switch), against Boost.Context's raw jump_fcontext"
    echo "and glibc swapcontext. \"MXCSR differs\": one context sets the inexact sticky flag once, the"
    echo "other clears it, so a switch that restores the whole MXCSR loads a new value every time."
    echo
    run_switch_peers
    echo
    bench_table_head cpu
    bench_row "raw switch" arch_same_ns "Boost jump_fcontext" boost boost_same_ns le 1.0
    bench_row "raw switch, MXCSR differs" arch_mxcsr_ns "Boost jump_fcontext" boost boost_mxcsr_ns le 1.0
    bench_row "raw switch" arch_same_ns "glibc swapcontext" ucontext ucontext_same_ns
    bench_row "raw switch, MXCSR differs" arch_mxcsr_ns "glibc swapcontext" ucontext ucontext_mxcsr_ns
fi

# --------------------------------------------------------------------------
# 2. green_yield ping-pong
# --------------------------------------------------------------------------
if want yield; then
    bench_section "2. Yield ping-pong between two greenlets (ns per hand-off)"
    echo "green_yield through the scheduler (public API), two greenlets; peers: the raw switches of"
    echo "section 1, Go runtime.Gosched() (GOMAXPROCS=1), State Threads, greenlet and gevent."
    echo
    # Boost's figure for the target is taken beside green_yield's (its runs
    # from section 1, if any, count too); swapcontext's from section 1.
    [ -n "$(bench_get ucontext_same_ns)" ] || bench_run ucontext "$O/core_ucontext" same $UC_N 5
    for i in 1 2 3; do
        bench_run libgreen "$O/core_green" yield $YIELD_N 5
        bench_run boost "$O/core_boost" same $SW_N 5
        bench_run go "$O/core_go" gosched $GO_YIELD_N 5
    done
    bench_run st "$O/core_st" cond $ST_COND_N 5
    bench_run st "$O/core_st" usleep0 $ST_USLEEP_N 5
    bench_run greenlet "$BENCH_PY" "$PY" greenlet $PY_SWITCH_N 5
    bench_run greenlet "$BENCH_PY" "$PY" pyloop $PY_SWITCH_N 5
    bench_run gevent "$BENCH_PY" "$PY" sleep0 $PY_SLEEP_N 5
    echo
    bench_table_head cpu
    bench_row "green_yield" green_yield_ns "Boost jump_fcontext (raw)" boost boost_same_ns le 2
    bench_row "green_yield" green_yield_ns "glibc swapcontext" ucontext ucontext_same_ns faster 20
    bench_row "green_yield" green_yield_ns "Go runtime.Gosched()" go go_gosched_ns faster 10
    bench_row "green_yield" green_yield_ns "ST st_cond_signal/wait hand-off" st st_cond_ns
    bench_row "green_yield" green_yield_ns "ST st_usleep(0) (idle thread, select)" st st_usleep0_ns
    bench_row "green_yield" green_yield_ns "greenlet.switch() (incl. Python loop)" greenlet greenlet_switch_ns
    bench_row "(Python loop + C call, inside the greenlet row)" "" "python3" greenlet python_loop_call_ns
    bench_row "green_yield" green_yield_ns "gevent.sleep(0)" gevent gevent_sleep0_ns
fi

# --------------------------------------------------------------------------
# 3. Spawn + run + join, one at a time
# --------------------------------------------------------------------------
if want spawn; then
    bench_section "3. Spawn + run + join, sequential, warm (ns per coroutine)"
    echo "One at a time: spawn, join, release; the stack comes back from the cache each time."
    echo "N=$SPAWN_N per run for libgreen, State Threads and Go; N=$PY_SPAWN_N for gevent."
    echo
    for i in 1 2 3; do
        bench_run libgreen "$O/core_green" spawn $SPAWN_N 5
        bench_run st "$O/core_st" spawn $SPAWN_N 5
        bench_run go "$O/core_go" spawn $SPAWN_N 5
    done
    bench_run gevent "$BENCH_PY" "$PY" spawn $PY_SPAWN_N 3
    echo
    bench_table_head cpu
    bench_row "spawn+join, sequential" green_spawn_seq_ns "State Threads create+join" st st_spawn_seq_ns faster 3
    bench_row "spawn+join, sequential" green_spawn_seq_ns "Go go f(); wg.Wait()" go go_spawn_seq_ns faster 5
    bench_row "spawn+join, sequential" green_spawn_seq_ns "gevent spawn(f).join()" gevent gevent_spawn_seq_ns
fi

# --------------------------------------------------------------------------
# 4. Spawn 100,000 then join all
# --------------------------------------------------------------------------
if want batch; then
    bench_section "4. Spawn $BATCH_N then join all (ns per coroutine)"
    echo "Rounds in one process: round 1 is cold (fresh stacks: every first touch of a page is a"
    echo "page fault, ~11 µs on these VMs, so cold figures measure the kernel more than the"
    echo "library); \"warm\" is the median of the later rounds, for every peer alike. gevent runs"
    echo "N=$PY_BATCH_N (3 rounds): at ~200 µs per greenlet here, 100,000 would take a minute per round."
    echo
    for i in 1 2; do
        bench_run libgreen "$O/core_green" batch $BATCH_N 7
        bench_run go "$O/core_go" batch $BATCH_N 7
    done
    bench_run st "$O/core_st" batch $BATCH_N 7
    bench_run gevent "$BENCH_PY" "$PY" batch $PY_BATCH_N 3
    echo
    bench_table_head cpu
    bench_row "batch, warm (median round)" green_batch_warm_ns "Go go f() x N + WaitGroup" go go_batch_warm_ns faster 3
    bench_row "batch, warm (median round)" green_batch_warm_ns "State Threads create x N, join x N" st st_batch_warm_ns
    bench_row "batch, warm (median round)" green_batch_warm_ns "gevent spawn x N + joinall (N=$PY_BATCH_N)" gevent gevent_batch_warm_ns
    bench_row "batch, COLD first round (page faults)" green_batch_cold_ns "Go" go go_batch_cold_ns
    bench_row "batch, COLD first round (page faults)" green_batch_cold_ns "State Threads" st st_batch_cold_ns
    bench_row "batch, COLD first round (page faults)" green_batch_cold_ns "gevent (N=$PY_BATCH_N)" gevent gevent_batch_cold_ns
fi

# --------------------------------------------------------------------------
# 5. Memory per idle coroutine
# --------------------------------------------------------------------------
if want mem; then
    bench_section "5. Memory per idle coroutine: $MEM_N blocked in a sleep (KiB per coroutine)"
    echo "Deltas of /proc/self/status over the N coroutines (handles array allocated before the"
    echo "baseline), libgreen with its default stack; the peak RSS line is /usr/bin/time's whole-process"
    echo "cross-check."
    echo
    bench_run libgreen "$O/core_green" mem $MEM_N
    bench_run st "$O/core_st" mem $MEM_N 0
    bench_run st "$O/core_st" mem $MEM_N 8192
    bench_run go "$O/core_go" mem $MEM_N
    bench_run gevent "$BENCH_PY" "$PY" mem $MEM_N
    echo
    bench_table_head cpu
    bench_row "VmRSS per idle greenlet" green_mem_rss_kib "" libgreen "" max 4.5 KiB
    for m in rss vmsize pte; do
        case $m in rss) lbl=VmRSS ;; vmsize) lbl=VmSize ;; pte) lbl=VmPTE ;; esac
        bench_row "$lbl per coroutine" green_mem_${m}_kib "State Threads, default 64 KiB stack" st st_mem_${m}_kib
        bench_row "$lbl per coroutine" green_mem_${m}_kib "State Threads, 8 KiB stack" st st_mem_stack_${m}_kib
        bench_row "$lbl per coroutine" green_mem_${m}_kib "Go, time.Sleep" go go_mem_${m}_kib
        bench_row "$lbl per coroutine" green_mem_${m}_kib "gevent, gevent.sleep" gevent gevent_mem_${m}_kib
    done
fi

# --------------------------------------------------------------------------
# 6. A million concurrent greenlets
# --------------------------------------------------------------------------
if want million; then
    bench_section "6. $MILLION_N concurrent greenlets on the default vm.max_map_count"
    echo "vm.max_map_count = $(cat /proc/sys/vm/max_map_count). Every greenlet spawned (default stack), run"
    echo "once and blocked in green_sleep at the same time. The process then exits without killing"
    echo "them (a pass over a million stacks costs about as much again here; section 5's 100,000 are"
    echo "killed and joined). Cold figures: every greenlet's stack page is a first touch."
    echo
    bench_run libgreen "$O/core_green" million $MILLION_N exit
    echo
    bench_table_head cpu
    bench_row "$MILLION_N greenlets alive at once" green_million_ok "" libgreen "" ok
    bench_row "/proc/self/maps lines at peak (limit $(bench_fmt "$(bench_get green_million_max_map_count)"))" green_million_maps "" libgreen ""
    bench_row "VmRSS per greenlet, KiB" green_million_rss_kib "" libgreen ""
    bench_row "VmPTE per greenlet, KiB" green_million_pte_kib "" libgreen ""
    bench_row "VmSize per greenlet, KiB" green_million_vmsize_kib "" libgreen ""
    bench_row "spawn + first run of all, s (cold: page faults)" green_million_spawn_s "" libgreen ""
fi

bench_finish
