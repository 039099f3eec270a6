#!/bin/sh
# The HTTP benchmark: a keep-alive "Hello, World!" server, libgreen's
# samples/hello_http (one greenlet per connection on green_server) against a
# raw libev callback server (the floor), Go net/http, a raw Go net.Conn loop
# (both GOMAXPROCS=1), State Threads and gevent's StreamServer.
#
#   sh tests/bench/suite_http.sh BUILD [SERVER...]
#
# SERVER picks some of: libgreen libev gonethttp goraw st gevent (default: all).
# Every server runs alone, pinned to CPU 0 (BENCH_CPU), on a free port of
# 127.0.0.1, loaded by one wrk thread pinned to CPU 1 (HTTP_WRK_CPU) with 100,
# then 1,000 connections (HTTP_CONNS), for 10 s (HTTP_DURATION), HTTP_ROUNDS
# times (default 1; figures are medians over the rounds, which interleave the
# servers). A fresh server process per run; it is killed afterwards, always.
#
# Figures per run: wrk's requests/s, p99 latency and socket errors; the
# server's CPU (utime+stime of all its threads from /proc/PID/stat, before and
# after the run) as a share of the wall time and per request; wrk's CPU share.
# Also the CPU that other processes took on those two CPUs meanwhile (from
# /proc/stat): above HTTP_BUSY_PCT (10) % of a CPU, the run is flagged as
# noisy and the suite ends with a warning. With HTTP_PERF=1, libgreen's runs
# are also recorded with `perf record -g` and the top of the profile printed;
# with HTTP_SYSCALLS=1 (implied by HTTP_PERF=1), every server's system calls
# are counted (perf stat, raw_syscalls:sys_enter) and shown per request.
# Both cost the server some CPU: leave them off for the figures that count.
#
# Sources in tests/bench/http/; programs built into BUILD/bench/.
set -u
. "$(dirname "$0")/lib.sh"
bench_init "${1:-build}"
[ $# -gt 0 ] && shift
ONLY=${*:-all}
want() { [ "$ONLY" = all ] || case " $ONLY " in *" $1 "*) true ;; *) false ;; esac; }

O=$BENCH_OUT
S=$BENCH_SRC/http
DURATION=${HTTP_DURATION:-10s}
ROUNDS=${HTTP_ROUNDS:-1}
CONNS=${HTTP_CONNS:-100 1000}
SERVER_CPU=${BENCH_CPU:-0}
if [ -z "${HTTP_WRK_CPU:-}" ]; then
    HTTP_WRK_CPU=1
    [ "$SERVER_CPU" = 1 ] && HTTP_WRK_CPU=0
fi
WRK_PIN="taskset -c $HTTP_WRK_CPU"
command -v taskset >/dev/null 2>&1 || WRK_PIN=""
HTTP_PERF=${HTTP_PERF:-0}
HTTP_BUSY_PCT=${HTTP_BUSY_PCT:-10}
HTTP_SYSCALLS=${HTTP_SYSCALLS:-$HTTP_PERF}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
PROBE="$S/probe.py"

# wrk and the servers each hold one fd per connection (1,000 + the listener).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SERVER_PID=""
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill "$SERVER_PID" 2>/dev/null
    _i=0
    while kill -0 "$SERVER_PID" 2>/dev/null && [ $_i -lt 40 ]; do
        # A zombie is gone for our purpose (wait reaps it below).
        case $(sed 's/.*) //' "/proc/$SERVER_PID/stat" 2>/dev/null | cut -d' ' -f1) in Z | "") break ;; esac
        sleep 0.05
        _i=$((_i + 1))
    done
    kill -9 "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
}
trap 'stop_server' EXIT
trap 'stop_server; exit 130' INT TERM

echo
echo "## HTTP \"Hello, World!\" server (keep-alive)"
echo
echo "note: one wrk thread saturates its core near the raw libev server's rate, so requests/s flatters every fast server: server CPU per request is the figure that counts."
echo
echo "- machine: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs, Linux $(uname -r); ulimit -n $(ulimit -n)"
echo "- servers pinned to CPU $SERVER_CPU (${BENCH_PIN:-NOT pinned: taskset missing}), wrk to CPU $HTTP_WRK_CPU; GOMAXPROCS=$GOMAXPROCS; libgreen: $(bench_rel "$BENCH_BUILD")/libgreen.a, ${BENCH_CFLAGS}"
pkgv() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
echo "- wrk $(pkgv wrk), libev $(pkgv libev-dev), State Threads $(pkgv libst-dev), $(go version 2>/dev/null | cut -d' ' -f3 || echo 'go ?'), gevent $(pkgv python3-gevent) (${BENCH_PY:-no python with gevent})"
[ "$(nproc)" -lt 2 ] && echo "- WARNING: one CPU only: wrk and the server share it"

# --------------------------------------------------------------------------
# wrk and the peers
# --------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing wrk (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >>"$BENCH_LOG" 2>&1
fi
HAVE_WRK=1
command -v wrk >/dev/null 2>&1 || HAVE_WRK=0

for p in st go gevent; do bench_need $p; done
rm -f "$BENCH_OUT/status/libev"
if [ ! -f /usr/include/ev.h ]; then
    bench_peer_status libev "skipped (not installed)"
    echo "peer libev: skipped (not installed)"
fi
if [ "$HAVE_WRK" = 0 ]; then
    echo "wrk: skipped (not installed): nothing can be measured"
    for p in libgreen libev st go gevent; do bench_peer_status $p "skipped (wrk not installed)"; done
fi

LG_SRC=$BENCH_ROOT/samples/hello_http.c
if [ "$HAVE_WRK" = 1 ] && want libgreen; then
    if [ -f "$LG_SRC" ]; then
        bench_build_c "$O/http_libgreen" "$LG_SRC" -lcurl
    else
        echo "error: $(bench_rel "$LG_SRC") is missing: libgreen has no result"
        BENCH_ERRORS=$((BENCH_ERRORS + 1))
    fi
fi
want libev && bench_build_peer_c libev "$O/http_libev" "$S/libev_hello.c" -lev
want st && bench_build_peer_c st "$O/http_st" "$S/st_hello.c" -lst
{ want gonethttp || want goraw; } && bench_build_go "$O/http_go" "$S/go/main.go"
echo "built into $(bench_rel "$O")/ (commands in $(bench_rel "$BENCH_LOG"))"

# --------------------------------------------------------------------------
# One run: a fresh server, wrk against it, the figures.
# --------------------------------------------------------------------------

# Total CPU ticks (utime + stime, all threads) of a process.
proc_ticks() {
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}

now() { date +%s.%N; }

# user+nice+system ticks of the server's and wrk's CPUs, from /proc/stat.
cpus_busy_ticks() {
    awk -v a="cpu$SERVER_CPU" -v b="cpu$HTTP_WRK_CPU" '$1 == a || $1 == b { t += $2 + $3 + $4 } END { print t }' /proc/stat
}

# Prints the wrk command for CONNS and PORT.
wrk_cmd() {
    echo "${WRK_PIN:+$WRK_PIN }wrk -t1 -c$1 -d$DURATION --latency http://127.0.0.1:$2/"
}

# http_run PEER ID CONNS CMD... (the argument PORT is replaced by the port).
http_run() {
    _peer=$1 _id=$2 _c=$3
    shift 3
    bench_peer_ok "$_peer" || return 0
    if [ ! -x "$1" ] && ! command -v "$1" >/dev/null 2>&1; then
        echo "  (not built: $(bench_rel "$1"))"
        return 0
    fi
    _port=$("$PY" "$PROBE" port) || { echo "  !! no free port"; return 0; }
    _n=$#
    _shown=""
    while [ $_n -gt 0 ]; do
        _a=$1
        shift
        _shown="$_shown $(bench_rel "$_a")"
        [ "$_a" = PORT ] && _a=$_port
        set -- "$@" "$_a"
        _n=$((_n - 1))
    done
    _env=""
    [ "$_peer" = go ] && _env="GOMAXPROCS=$GOMAXPROCS "
    echo "  \$ ${_env}${BENCH_PIN:+$BENCH_PIN }${_shown# }   <- wrk -c$_c, port $_port"
    _slog=$O/http_server.log
    # shellcheck disable=SC2086
    $BENCH_PIN "$@" >"$_slog" 2>&1 &
    SERVER_PID=$!
    BENCH_RUNS=$((BENCH_RUNS + 1))
    if ! _why=$("$PY" "$PROBE" check "$_port" "$SERVER_PID" 15 2>&1); then
        echo "      !! the server did not answer: $_why"
        sed 's/^/      | /' "$_slog" | tail -5
        stop_server
        [ "$_peer" = libgreen ] && BENCH_ERRORS=$((BENCH_ERRORS + 1))
        return 0
    fi
    _perf="" _sc=""
    if [ "$HTTP_PERF" = 1 ] && [ "$_peer" = libgreen ] && command -v perf >/dev/null 2>&1; then
        _perf=$O/http_${_id}_c${_c}.perf.data
        perf record -q -g -o "$_perf" -p "$SERVER_PID" >>"$BENCH_LOG" 2>&1 &
        _perf_pid=$!
        sleep 0.5
    fi
    if [ "$HTTP_SYSCALLS" = 1 ] && command -v perf >/dev/null 2>&1; then
        _sc=$O/http_syscalls.out
        perf stat -x, -e raw_syscalls:sys_enter -o "$_sc" -p "$SERVER_PID" >>"$BENCH_LOG" 2>&1 &
        _sc_pid=$!
        sleep 0.3
    fi
    _out=$O/http_wrk.out
    _t0=$(now)
    _b0=$(cpus_busy_ticks)
    _c0=$(proc_ticks "$SERVER_PID")
    # shellcheck disable=SC2046,SC2091
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f "#wrk-cpu %U %S %e" $(wrk_cmd "$_c" "$_port") >"$_out" 2>&1
    else
        $(wrk_cmd "$_c" "$_port") >"$_out" 2>&1
    fi
    _wrc=$?
    _c1=$(proc_ticks "$SERVER_PID")
    _b1=$(cpus_busy_ticks)
    _t1=$(now)
    if [ -n "$_perf" ]; then
        kill -INT "$_perf_pid" 2>/dev/null
        wait "$_perf_pid" 2>/dev/null
    fi
    _syscalls=""
    if [ -n "$_sc" ]; then
        kill -INT "$_sc_pid" 2>/dev/null
        wait "$_sc_pid" 2>/dev/null
        _syscalls=$(awk -F, '/raw_syscalls:sys_enter/ { print $1 }' "$_sc")
    fi
    _alive=1
    [ -n "$_c1" ] || _alive=0
    stop_server
    {
        echo "== $_id -c$_c: $(wrk_cmd "$_c" "$_port")"
        cat "$_out"
        echo "-- server output:"
        cat "$_slog"
    } >>"$BENCH_LOG"
    sed 's/^/      # server: /' "$_slog" | head -3
    if [ "$_alive" = 0 ] || [ "$_wrc" != 0 ]; then
        [ "$_alive" = 0 ] && echo "      !! the server died during the run"
        [ "$_wrc" != 0 ] && echo "      !! wrk exit status $_wrc"
        grep -v '^#' "$_out" | tail -5 | sed 's/^/      | /'
        [ "$_peer" = libgreen ] && BENCH_ERRORS=$((BENCH_ERRORS + 1))
        return 0
    fi
    # wrk's report -> result lines (keys ID_cCONNS_*). "others": CPU time that
    # other processes took on the two CPUs meanwhile, in % of one CPU.
    awk -v k="${_id}_c${_c}" -v c0="$_c0" -v c1="$_c1" -v t0="$_t0" -v t1="$_t1" -v hz="$CLK_TCK" \
        -v b0="$_b0" -v b1="$_b1" -v sc="$_syscalls" '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /m$/) return v * 60000
            if (v ~ /s$/) return v * 1000
            return v + 0
        }
        /requests in/ { req = $1 }
        /^Requests\/sec:/ { rps = $2 }
        $1 == "99%" { p99 = ms($2) }
        /Socket errors:/ {
            errtxt = $0
            sub(/^ *Socket errors: */, "", errtxt)
            gsub(/,/, "")
            err = $4 + $6 + $8 + $10
        }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /^#wrk-cpu / { wticks = ($2 + $3) * hz; wcpu = ($2 + $3) / $4 * 100 }
        END {
            if (req == "" || rps == "") exit 1
            cpu = (c1 - c0) / hz
            wall = t1 - t0
            us = req > 0 ? cpu * 1e6 / req : 0
            errs = err + 0
            if (errtxt != "") errs = errs " (" errtxt ")"
            if (bad) errs = errs ", NON-2xx " bad
            wtxt = wcpu == "" ? "?" : sprintf("%.1f", wcpu)
            printf "result %s_rps %s\n", k, rps
            printf "result %s_requests %s\n", k, req
            printf "result %s_p99_ms %s\n", k, p99
            printf "result %s_errors %d\n", k, err
            printf "result %s_non2xx %d\n", k, bad
            printf "result %s_cpu_pct %.4g\n", k, cpu / wall * 100
            printf "result %s_cpu_us %.4g\n", k, us
            if (wcpu != "") printf "result %s_wrk_cpu_pct %.4g\n", k, wcpu
            if (sc ~ /^[0-9]+$/ && req > 0) printf "result %s_syscalls_per_req %.3g\n", k, sc / req
            other = ""
            if (b0 != "" && b1 != "" && wcpu != "") {
                other = ((b1 - b0) - (c1 - c0) - wticks) / hz / wall * 100
                if (other < 0) other = 0
                printf "result %s_other_cpu_pct %.3g\n", k, other
            }
            printf "# %s req/s, p99 %s ms, socket errors %s, server CPU %.1f %% (%.2f s over %.2f s), %.2f us/req, wrk CPU %s %%", rps, p99, errs, cpu / wall * 100, cpu, wall, us, wtxt
            if (other != "") printf ", other processes %.0f %%", other
            if (sc ~ /^[0-9]+$/ && req > 0) printf ", %.2f syscalls/req", sc / req
            printf "\n"
        }' "$_out" >"$_out.res" || {
        echo "      !! could not read wrk's report:"
        tail -5 "$_out" | sed 's/^/      | /'
        [ "$_peer" = libgreen ] && BENCH_ERRORS=$((BENCH_ERRORS + 1))
        return 0
    }
    _other=$(sed -n 's/^result .*_other_cpu_pct //p' "$_out.res")
    _flag=""
    if [ -n "$_other" ] && awk -v o="$_other" -v m="$HTTP_BUSY_PCT" 'BEGIN { exit !(o > m) }'; then
        _flag="  <- busy machine: other processes took $_other % of a CPU on CPUs $SERVER_CPU,$HTTP_WRK_CPU"
        BENCH_NOISY=$((BENCH_NOISY + 1))
    fi
    sed -n 's/^# /      # /p' "$_out.res" | sed "s/\$/$_flag/"
    sed -n 's/^result \([^ ]*\) \([^ ]*\)$/\1 \2/p' "$_out.res" >>"$BENCH_RESULTS"
    if [ -n "$_perf" ]; then
        echo "      # perf profile: $(bench_rel "$_perf"); self time by object, then the top symbols:"
        perf report -i "$_perf" --no-children --sort dso -g none --stdio 2>/dev/null |
            grep -v '^#' | grep '%' | head -6 | sed 's/^/      #   /'
        perf report -i "$_perf" --no-children --sort dso,sym -g none --stdio 2>/dev/null |
            grep -v '^#' | grep '%' | head -25 | sed 's/^/      #   /'
    fi
    return 0
}

# Server list: id, peer (for install/build status), label, command.
run_server() { # ID CONNS
    case $1 in
        libgreen) http_run libgreen libgreen "$2" "$O/http_libgreen" PORT ;;
        libev) http_run libev libev "$2" "$O/http_libev" PORT ;;
        gonethttp) http_run go gonethttp "$2" "$O/http_go" nethttp PORT ;;
        goraw) http_run go goraw "$2" "$O/http_go" raw PORT ;;
        st) http_run st st "$2" "$O/http_st" PORT ;;
        gevent) http_run gevent gevent "$2" "$BENCH_PY" "$S/gevent_hello.py" PORT ;;
    esac
}
label() {
    case $1 in
        libgreen) echo "libgreen hello_http (greenlet per conn)" ;;
        libev) echo "raw libev callbacks (C, the floor)" ;;
        gonethttp) echo "Go net/http, GOMAXPROCS=1" ;;
        goraw) echo "Go raw net.Conn loop, GOMAXPROCS=1" ;;
        st) echo "State Threads, thread per conn" ;;
        gevent) echo "gevent StreamServer, minimal parse" ;;
    esac
}
peer_of() {
    case $1 in gonethttp | goraw) echo go ;; *) echo "$1" ;; esac
}
SERVERS="libgreen libev gonethttp goraw st gevent"

# --------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------
bench_section "HTTP keep-alive \"Hello, World!\": wrk -t1 (CPU $HTTP_WRK_CPU) -> one server (CPU $SERVER_CPU)"
echo "Every server answers GET / with exactly"
printf '%s\n' '`HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!`'
echo "(Go net/http adds a Date header). The load, per connection count:"
echo
for c in $CONNS; do echo "    $(wrk_cmd "$c" PORT)"; done
echo
echo "PORT: a free port of 127.0.0.1, new for each run; the server is checked to answer GET / twice on"
echo "one connection before wrk starts, and is killed after it. $ROUNDS round(s), servers interleaved."
echo
r=1
while [ "$r" -le "$ROUNDS" ]; do
    [ "$ROUNDS" -gt 1 ] && echo "round $r of $ROUNDS:"
    for c in $CONNS; do
        for s in $SERVERS; do
            want "$s" && run_server "$s" "$c"
        done
    done
    r=$((r + 1))
done

# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------
cell() { # KEY -> formatted median, or the reason there is none
    _v=$(bench_get "$1")
    if [ -n "$_v" ]; then bench_fmt "$_v"; else echo "—"; fi
}
SC_HEAD="" SC_SEP="" SC_EMPTY=""
if [ "$HTTP_SYSCALLS" = 1 ]; then SC_HEAD=" syscalls/req |" SC_SEP="---|" SC_EMPTY=" |"; fi
echo
echo "| server | conns | req/s | req/s ×libev | p99 ms | socket errors | server CPU % | server CPU µs/req | CPU/req ×libev | wrk CPU % | others' CPU % |$SC_HEAD"
echo "|---|---|---|---|---|---|---|---|---|---|---|$SC_SEP"
for c in $CONNS; do
    for s in $SERVERS; do
        want "$s" || continue
        k=${s}_c$c
        p=$(peer_of "$s")
        if [ -z "$(bench_get "${k}_rps")" ]; then
            if bench_peer_ok "$p"; then why="no result (run failed, see $(bench_rel "$BENCH_LOG"))"; else why=$(bench_peer_reason "$p"); fi
            echo "| $(label "$s") | $c | $why | | | | | | | | |$SC_EMPTY"
            continue
        fi
        err=$(bench_get "${k}_errors")
        bad=$(bench_get "${k}_non2xx")
        [ -n "$bad" ] && [ "$bad" != 0 ] && err="$err (+$bad non-2xx)"
        echo "| $(label "$s") | $c | $(cell "${k}_rps") | $(bench_ratio "$(bench_get "${k}_rps")" "$(bench_get "libev_c${c}_rps")") | $(cell "${k}_p99_ms") | $err | $(cell "${k}_cpu_pct") | $(cell "${k}_cpu_us") | $(bench_ratio "$(bench_get "${k}_cpu_us")" "$(bench_get "libev_c${c}_cpu_us")") | $(cell "${k}_wrk_cpu_pct") | $(cell "${k}_other_cpu_pct") |${SC_HEAD:+ $(cell "${k}_syscalls_per_req") |}"
    done
done
echo
echo "Server CPU: utime+stime of the server process (all threads), /proc/PID/stat, over the run; µs/req is that"
echo "CPU divided by wrk's request count. ×libev: this server's figure over the raw libev server's. When wrk's"
echo "CPU is near 100 %, the client is the limit and req/s says little: compare CPU per request. Others' CPU:"
echo "what other processes took on the two CPUs during the run (% of one CPU, /proc/stat); above"
echo "$HTTP_BUSY_PCT %, the run is flagged as done on a busy machine."

# A target on a rate: libgreen/peer >= BOUND (lib.sh's kinds are for times).
# Same row format as bench_row, and the row goes to the summary too.
row_ge() { # METRIC LG_KEY PEER_LABEL PEER PEER_KEY BOUND
    _lg=$(bench_get "$2")
    _pv=$(bench_get "$5")
    _lf=$(bench_fmt "$_lg")
    [ -z "$_lg" ] && _lf="no result"
    if [ -n "$_pv" ]; then
        _pf=$(bench_fmt "$_pv")
    elif bench_peer_ok "$4"; then
        _pf="no result (run failed, see log)"
    else
        _pf=$(bench_peer_reason "$4")
    fi
    _r1=$(bench_ratio "$_lg" "$_pv")
    _r2=$(bench_ratio "$_pv" "$_lg")
    _tt="≥ $6× peer"
    if [ -z "$_lg" ]; then
        _v="MISS (no result)"
    elif [ -z "$_pv" ]; then
        _v="n/a: $_pf"
    else
        _v=$(awk -v l="$_lg" -v p="$_pv" -v b="$6" 'BEGIN { print (l / p >= b) ? "PASS" : "MISS" }')
    fi
    case $_v in MISS*) BENCH_MISSED=$((BENCH_MISSED + 1)) ;; esac
    echo "| $1 | $_lf | $3 | $_pf | $_r1 | $_r2 | $_tt | $_v |"
    echo "| $1 | $3 | $_lf vs $_pf | libgreen/peer $_r1 | $_tt | $_v |" >>"$BENCH_SUMMARY"
}

# Zero socket errors (wrk's connect + read + write + timeout) for libgreen.
row_no_errors() { # METRIC LG_KEY
    _lg=$(bench_get "$2")
    if [ -z "$_lg" ]; then
        _lf="no result" _v="MISS (no result)"
    else
        _lf=$(awk -v x="$_lg" 'BEGIN { printf "%d", x }')
        _v=PASS
        [ "$_lf" = 0 ] || _v=MISS
    fi
    case $_v in MISS*) BENCH_MISSED=$((BENCH_MISSED + 1)) ;; esac
    echo "| $1 | $_lf | — | — | — | — | 0 errors | $_v |"
    echo "| $1 | — | $_lf | — | 0 errors | $_v |" >>"$BENCH_SUMMARY"
}

if want libgreen; then
    echo
    echo "Targets (libgreen's hello_http against each peer, at each connection count):"
    echo
    bench_table_head
    # Rows against a server that was not selected are left out.
    for c in $CONNS; do
        want libev && bench_row "HTTP server CPU µs/request, -c$c" libgreen_c${c}_cpu_us "raw libev server" libev libev_c${c}_cpu_us le 1.15
        want goraw && bench_row "HTTP server CPU µs/request, -c$c" libgreen_c${c}_cpu_us "Go raw net.Conn server" go goraw_c${c}_cpu_us le 0.85
        want libev && row_ge "HTTP requests/s, -c$c" libgreen_c${c}_rps "raw libev server" libev libev_c${c}_rps 0.9
        want gonethttp && row_ge "HTTP requests/s, -c$c" libgreen_c${c}_rps "Go net/http" go gonethttp_c${c}_rps 1.0
        want gevent && row_ge "HTTP requests/s, -c$c" libgreen_c${c}_rps "gevent StreamServer" gevent gevent_c${c}_rps 2
    done
    for c in $CONNS; do
        [ "$c" -ge 1000 ] && row_no_errors "HTTP socket errors, -c$c" libgreen_c${c}_errors
    done
fi

if [ "$BENCH_NOISY" != 0 ]; then
    echo
    echo "WARNING: $BENCH_NOISY run(s) shared their CPUs with other processes (others' CPU above $HTTP_BUSY_PCT %):"
    echo "requests/s then measures the scheduler (a server with more threads, like Go's, gets a larger share),"
    echo "and CPU per request is inflated by cache and TLB pollution. Rerun on a quiet machine."
fi

bench_finish
