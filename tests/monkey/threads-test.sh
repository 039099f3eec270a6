#!/bin/sh
# green-run --threads: POSIX threads become greenlets on the main thread's
# hub. Real programs (Debian's python3 with threading, concurrent.futures and
# a ThreadingHTTPServer loaded by curl) and C programs written here with plain
# pthreads (compiled with cc -pthread, nothing of libgreen linked) print the
# same natively and under --threads; a thread-per-connection echo server holds
# 10,000 connections on one OS thread; a lock-order deadlock is reported
# instead of hanging.
#
#   sh tests/monkey/threads-test.sh [BUILD_DIR]
set -u
build=${1:-build}
gr="$build/green-run"
src=$(dirname "$0")/threads
py=/usr/bin/python3
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
ko() { fail=$((fail + 1)); echo "FAIL: $1"; }

tmp=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

for prog in echo_server echo_client misuse deadlock sync; do
    if ! cc -O2 -std=gnu11 -Wall -pthread "$src/$prog.c" -o "$tmp/$prog" 2>"$tmp/cc.err"; then
        cat "$tmp/cc.err"
        ko "compile $prog"
    fi
done

# Waits (up to 10 s) for a port file to appear.
wait_port() {
    i=0
    while [ ! -s "$1" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    [ -s "$1" ]
}

# Same stdout and exit status natively and under --threads (each run bounded).
same() { # name, command...
    name=$1; shift
    a=$(timeout 60 "$@" 2>&1; echo "rc=$?")
    b=$(timeout 60 "$gr" --threads "$@" 2>&1; echo "rc=$?")
    if [ "$a" = "$b" ]; then ok "same natively and under --threads: $name"
    else ko "same natively and under --threads: $name"; echo "  native:"; echo "$a" | sed 's/^/    /'
        echo "  --threads:"; echo "$b" | sed 's/^/    /'; fi
}

t() { name=$1; shift; if "$@"; then ok "$name"; else ko "$name"; fi; }

t "--help documents --threads" sh -c "'$gr' --help | grep -q -- '--threads.*GREEN_THREADS=1'"

# The shim tells libgreen's own pthread calls from the program's by their
# return address (monkey/threads.c): a tail call from libgreen into a pthread
# function would hide it. None may be compiled in (the Makefile builds those
# files with -fno-optimize-sibling-calls).
if command -v objdump >/dev/null 2>&1; then
    tails=$(objdump -d --no-show-raw-insn "$build/libgreen.so" |
        awk '/^[0-9a-f]+ </ { fn = $2 } /jmp +[0-9a-f]+ <(pthread_|sem_|sched_yield)/ { print fn, $NF }')
    t "libgreen.so makes no tail call into a pthread function${tails:+ (found: $tails)}" [ -z "$tails" ]
fi

# The mode really maps threads onto greenlets: one OS thread, distinct idents.
out=$(timeout 30 "$gr" --threads $py -c '
import threading, time
ids = set()
def f():
    ids.add(threading.get_ident()); time.sleep(0.05)
ts = [threading.Thread(target=f) for _ in range(20)]
[t.start() for t in ts]
print([l.split()[1] for l in open("/proc/self/status") if l.startswith("Threads:")][0], len(ids))
[t.join() for t in ts]' 2>&1)
t "python3: 20 threads on 1 OS thread under --threads (got: $out)" [ "$out" = "1 20" ]
out=$(timeout 30 "$gr" $py -c '
import threading
e = threading.Event(); t = threading.Thread(target=e.wait); t.start()
print([l.split()[1] for l in open("/proc/self/status") if l.startswith("Threads:")][0]); e.set(); t.join()' 2>&1)
t "without --threads, threads stay OS threads (got: $out)" [ "$out" = "2" ]

# 3. Misuse returns what glibc returns; the toolbox works across threads.
same "misuse (join detached/self, EPERM unlock, EBUSY destroy, past deadlines...)" "$tmp/misuse"
same "mutex/cond/rwlock/barrier/sem/once/keys, pthread_exit in main" "$tmp/sync"

# 1. Real programs: python3 threading + concurrent.futures.
same "python3 threading + concurrent.futures" $py "$src/py_threading.py"

# 1. python3 ThreadingHTTPServer loaded by curl, natively and under --threads.
http_run() { # mode -> output in $tmp/http.$1
    rm -f "$tmp/port"
    if [ "$1" = native ]; then
        timeout 90 $py "$src/py_http.py" "$tmp/port" 220 >"$tmp/http.$1" 2>&1 &
    else
        timeout 90 "$gr" --threads $py "$src/py_http.py" "$tmp/port" 220 >"$tmp/http.$1" 2>&1 &
    fi
    sp=$!; pids="$pids $sp"
    if ! wait_port "$tmp/port"; then ko "http server ($1) did not start"; return; fi
    port=$(cat "$tmp/port")
    codes=$(curl -s --no-progress-meter --parallel --parallel-max 20 \
        "http://127.0.0.1:$port/p[1-200]" -o /dev/null -w '%{http_code}\n' | grep -c '^200$')
    big=$(curl -s --no-progress-meter --parallel --parallel-max 10 \
        "http://127.0.0.1:$port/big[1-20]" -o /dev/null -w '%{http_code} %{size_download}\n' |
        grep -c '^200 46000$')
    wait $sp; rc=$?
    echo "rc=$rc" >>"$tmp/http.$1"
    t "curl against ThreadingHTTPServer ($1): 200 small responses ok (got $codes), 20 big ok (got $big)" \
        [ "$codes" = 200 ] && [ "$big" = 20 ]
}
http_run native
http_run threads
if cmp -s "$tmp/http.native" "$tmp/http.threads"; then ok "same: ThreadingHTTPServer output"
else ko "same: ThreadingHTTPServer output"; cat "$tmp/http.native" "$tmp/http.threads"; fi

# 2. Thread-per-connection echo server: 10,000 concurrent connections on one
#    OS thread, every byte checked by the client.
echo_run() { # name, conns, msgsize, server-prefix...
    name=$1; n=$2; size=$3; shift 3
    rm -f "$tmp/eport"
    timeout 120 "$@" "$tmp/echo_server" "$tmp/eport" "$n" >"$tmp/server.out" 2>&1 &
    sp=$!; pids="$pids $sp"
    if ! wait_port "$tmp/eport"; then ko "$name: server did not start"; return; fi
    # The server's pid: green-run execs, timeout forks once.
    spid=$(pgrep -P $sp | head -1); [ -n "$spid" ] || spid=$sp
    timeout 120 "$tmp/echo_client" "$(cat "$tmp/eport")" "$n" "$size" 0 "$spid" >"$tmp/client.out" 2>&1
    crc=$?
    wait $sp; src_rc=$?
    want_bytes=$((n * size))
    if [ $crc = 0 ] && [ $src_rc = 0 ] &&
        grep -q "^conns=$n bytes=$want_bytes bad=0 " "$tmp/client.out" &&
        grep -q "^served=$n max_live=$n errors=0 bytes=$want_bytes\$" "$tmp/server.out"; then
        ok "$name: $(head -1 "$tmp/client.out"), $(cat "$tmp/server.out")"
    else
        ko "$name (client rc=$crc, server rc=$src_rc)"; cat "$tmp/client.out" "$tmp/server.out"
    fi
}
echo_run "echo server, 200 connections x 64 KiB, native" 200 65536
echo_run "echo server, 200 connections x 64 KiB, --threads" 200 65536 "$gr" --threads
echo_run "echo server, 10000 concurrent connections x 4 KiB, --threads" 10000 4096 "$gr" --threads
t "echo server under --threads ran on one OS thread" grep -q "threads=1\$" "$tmp/client.out"

# 4. A lock-order deadlock is reported (green_dump's listing) instead of hanging.
timeout 20 "$gr" --threads "$tmp/deadlock" >"$tmp/dl.out" 2>"$tmp/dl.err"
rc=$?
if [ $rc = 70 ] && grep -q "deadlock" "$tmp/dl.err" && grep -q "'one' waiting on" "$tmp/dl.err" &&
    grep -q "blocked in pthread_mutex_lock(.*held by thread .*'two'" "$tmp/dl.err" &&
    ! grep -q "not reached" "$tmp/dl.out"; then
    ok "deadlock reported with green_dump's listing, exit 70"
else
    ko "deadlock report (rc=$rc)"; cat "$tmp/dl.err"
fi

echo "threads: $pass passed, $fail failed"
[ "$fail" = 0 ]
