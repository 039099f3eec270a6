#!/bin/sh
# The HTTP client benchmark: 20,000 GETs of a small file from a local nginx,
# 500 at a time, keep-alive, by
#   - libgreen: 500 greenlets, each performing its own easy handle with
#     green_curl_perform in a loop (curl/green_get.c);
#   - the floor: a raw curl_multi_socket_action loop on libev, no greenlets,
#     500 easy handles re-added as they finish (curl/raw_multi.c);
#   - a pool of 16 OS threads, each reusing its easy handle with
#     curl_easy_perform (curl/thread_pool.c);
#   - gevent with requests: monkey.patch_all(), 500 greenlets, a
#     requests.Session each (curl/gevent_requests.py).
#
#   sh tests/bench/suite_curl.sh BUILD
#
# nginx (Debian's nginx-light) is started by this script on a free loopback
# port, from a temporary directory under BUILD/bench/, as one process
# (master_process off) pinned to CPU 1 while the clients run on CPU 0, and
# stopped at the end. As root, missing nginx-light and python3-requests are
# installed with apt-get first. Targets: libgreen >= 90 % of the raw multi
# loop's requests/s, and >= 1.5x the thread pool's.
#
# The C clients run in ROUNDS interleaved rounds (raw, libgreen, threads),
# so that the machine's drifting load falls on all of them; a ratio is the
# median of the ratios within each round, which a slow drift of the load
# between rounds does not bias.
#
# Each round also runs the raw loop and libgreen with only CEIL_CONC (32)
# transfers at once, and libgreen's 500 greenlets under
# green_curl_limit(CEIL_CONC), for a second table without targets: what
# libcurl itself allows against the pool. libcurl 7.88 walks its connection
# cache per transfer, so its CPU per GET grows with the connections open to
# one host, and the floor's own ratio to the pool bounds libgreen's.
#
# Environment: CURL_N (GETs per run, default 20000), CURL_ROUNDS (default 5),
# CURL_RUNS (runs per invocation, default 1), plus lib.sh's BENCH_CPU,
# BENCH_TIMEOUT, BENCH_STRICT.
set -u
. "$(dirname "$0")/lib.sh"
bench_init "${1:-build}"

O=$BENCH_OUT
S=$BENCH_SRC/curl
N=${CURL_N:-20000}
CONC=500
CEIL_CONC=32
THREADS=16
RUNS=${CURL_RUNS:-1}
ROUNDS=${CURL_ROUNDS:-5}

echo
echo "## HTTP client benchmark (libcurl)"
echo

# --------------------------------------------------------------------------
# Peers: nginx (the server every row needs), python3-requests (gevent row)
# --------------------------------------------------------------------------
nginx_bin() {
    for p in /usr/sbin/nginx /usr/local/sbin/nginx $(command -v nginx 2>/dev/null); do
        [ -x "$p" ] && { echo "$p"; return 0; }
    done
    return 1
}
have_requests() { [ -n "$BENCH_PY" ] && "$BENCH_PY" -c 'import requests' 2>/dev/null; }

missing=""
nginx_bin >/dev/null || missing="$missing nginx-light"
[ -n "$BENCH_PY" ] && ! have_requests && missing="$missing python3-requests"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "curl bench: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >>"$BENCH_LOG" 2>&1 ||
        { apt-get update -qq >>"$BENCH_LOG" 2>&1 &&
            apt-get install -y -qq --no-install-recommends $missing >>"$BENCH_LOG" 2>&1; } ||
        echo "curl bench: could not install$missing (see $(bench_rel "$BENCH_LOG"))"
fi

NGINX=$(nginx_bin || true)
pkgv() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
echo "- machine: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs, Linux $(uname -r)"
echo "- libcurl $(pkgv libcurl4-openssl-dev), libev $(pkgv libev-dev), nginx $(pkgv nginx-common), gevent $(pkgv python3-gevent), requests $(pkgv python3-requests)"

for p in rawmulti threads gevent; do rm -f "$O/status/$p"; done # libgreen: never marked
if [ -z "$BENCH_PY" ]; then
    bench_peer_status gevent "skipped (not installed)"
    echo "peer gevent: skipped (not installed)"
elif ! have_requests; then
    bench_peer_status gevent "skipped (not installed: python3-requests)"
    echo "peer gevent+requests: skipped (not installed)"
fi

# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------
bench_build_c "$O/curl_green_get" "$S/green_get.c" -lcurl
bench_build_peer_c rawmulti "$O/curl_raw_multi" "$S/raw_multi.c" -lev -lcurl
bench_build_peer_c threads "$O/curl_thread_pool" "$S/thread_pool.c" -lcurl -lpthread
echo "built into $(bench_rel "$O")/ (commands in $(bench_rel "$BENCH_LOG"))"

# --------------------------------------------------------------------------
# nginx
# --------------------------------------------------------------------------
NGINX_DIR=""
NGINX_PID=""
nginx_stop() {
    if [ -n "$NGINX_PID" ]; then
        kill "$NGINX_PID" 2>/dev/null
        wait "$NGINX_PID" 2>/dev/null
        NGINX_PID=""
    fi
    [ -n "$NGINX_DIR" ] && rm -rf "$NGINX_DIR"
    NGINX_DIR=""
}
trap nginx_stop EXIT
trap 'nginx_stop; exit 130' INT TERM

# The server's CPU: the other one when there are two.
client_cpu=${BENCH_CPU:-0}
server_cpu=1
[ "$client_cpu" = 1 ] && server_cpu=0
NGINX_PIN=""
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    NGINX_PIN="taskset -c $server_cpu"
fi

# Waits until a GET of the small file succeeds (up to 5 s).
nginx_ready() {
    _i=0
    while [ $_i -lt 100 ]; do
        kill -0 "$NGINX_PID" 2>/dev/null || return 1
        if command -v curl >/dev/null 2>&1; then
            curl -sf -o /dev/null "$URL" && return 0
        elif [ -n "$BENCH_PY" ]; then
            "$BENCH_PY" -c "import urllib.request as u; u.urlopen('$URL', timeout=1)" 2>/dev/null && return 0
        else
            sleep 1
            return 0
        fi
        sleep 0.05
        _i=$((_i + 1))
    done
    return 1
}

nginx_start() {
    NGINX_DIR=$(mktemp -d "$O/nginx.XXXXXX")
    mkdir -p "$NGINX_DIR/www"
    printf 'Hello, World!\n' >"$NGINX_DIR/www/small.txt"
    _try=0
    while [ $_try -lt 5 ]; do
        _port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
        d=$NGINX_DIR
        cat >"$d/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path $d/client_body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    server { listen 127.0.0.1:$_port backlog=4096; root $d/www; }
}
EOF
        # shellcheck disable=SC2086
        $NGINX_PIN "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" >"$d/nginx.out" 2>&1 &
        NGINX_PID=$!
        URL="http://127.0.0.1:$_port/small.txt"
        if nginx_ready; then
            return 0
        fi
        kill "$NGINX_PID" 2>/dev/null
        wait "$NGINX_PID" 2>/dev/null
        NGINX_PID=""
        _try=$((_try + 1))
    done
    echo "nginx did not start: $(tail -3 "$NGINX_DIR/error.log" 2>/dev/null)"
    return 1
}

# Per-round ratios: KEY's value from this round's run over PEER_KEY's,
# recorded as "pair:KEY/PEER_KEY" (skipped if either run failed).
round_begin() {
    _round_lines=$(wc -l <"$BENCH_RESULTS")
}
round_pair() { # KEY PEER_KEY
    _a=$(tail -n +$((_round_lines + 1)) "$BENCH_RESULTS" | awk -v k="$1" '$1 == k { v = $2 } END { print v }')
    _b=$(tail -n +$((_round_lines + 1)) "$BENCH_RESULTS" | awk -v k="$2" '$1 == k { v = $2 } END { print v }')
    if [ -n "$_a" ] && [ -n "$_b" ]; then
        echo "pair:$1/$2 $(awk -v a="$_a" -v b="$_b" 'BEGIN { printf "%.6f", a / b }')" >>"$BENCH_RESULTS"
    fi
}

bench_section "1. $N GETs of a small file from nginx, $CONC at once, keep-alive (requests/s)"
echo "Each program first makes one warm-up GET per client (to open its keep-alive connection), then"
echo "times $N GETs ($RUNS run(s) per invocation). The C clients run in $ROUNDS interleaved rounds: the"
echo "figures are medians over them, the ratios medians of the ratios within each round (which a"
echo "drifting machine load does not bias). Every C client sets CURLOPT_NOSIGNAL (the thread"
nginx_where="unpinned"
[ -n "$NGINX_PIN" ] && nginx_where="pinned to CPU $server_cpu"
echo "pool must). Clients pinned to CPU $client_cpu, nginx (one process) $nginx_where."
echo "CPU µs per GET is the client's own user+system time over the timed GETs; \"on CPU time\""
echo "compares GETs per second of that CPU time, which other processes do not inflate."
echo

if [ -z "$NGINX" ]; then
    # Every row needs the server: none is printed (and none is missed).
    echo "nginx (the server of every row): skipped (not installed)"
    bench_finish
elif ! nginx_start; then
    BENCH_ERRORS=$((BENCH_ERRORS + 1))
    bench_finish
else
    echo "nginx: $NGINX, pid $NGINX_PID, $URL"
    echo
    r=1
    while [ $r -le "$ROUNDS" ]; do
        round_begin
        bench_run rawmulti "$O/curl_raw_multi" "$URL" "$N" $CONC "$RUNS"
        bench_run libgreen "$O/curl_green_get" "$URL" "$N" $CONC "$RUNS"
        bench_run threads "$O/curl_thread_pool" "$URL" "$N" $THREADS "$RUNS"
        round_pair curl_green_rps curl_raw_rps
        round_pair curl_green_rps curl_threads_rps
        round_pair curl_green_rps@cpu curl_raw_rps@cpu
        round_pair curl_green_rps@cpu curl_threads_rps@cpu
        bench_run rawmulti "$O/curl_raw_multi" "$URL" "$N" $CEIL_CONC "$RUNS" raw$CEIL_CONC
        bench_run libgreen "$O/curl_green_get" "$URL" "$N" $CEIL_CONC "$RUNS" green$CEIL_CONC
        bench_run libgreen "$O/curl_green_get" "$URL" "$N" $CONC "$RUNS" limit$CEIL_CONC $CEIL_CONC
        round_pair curl_raw_rps curl_threads_rps
        round_pair curl_raw${CEIL_CONC}_rps curl_threads_rps
        round_pair curl_green${CEIL_CONC}_rps curl_threads_rps
        round_pair curl_limit${CEIL_CONC}_rps curl_threads_rps
        r=$((r + 1))
    done
    if bench_peer_ok gevent; then
        bench_run gevent "$BENCH_PY" "$S/gevent_requests.py" "$URL" "$N" $CONC 1
    fi
    nginx_stop
fi

# A requests/s row: higher is better, so the target is a minimum of
# libgreen/peer (lib.sh's kinds are for times, where lower is better). The
# last column compares the requests per second of each client's own CPU time
# (KEY@cpu), which other processes on the machine do not inflate.
curl_verdict() { # RATIO MIN
    if [ -z "$1" ]; then
        echo "MISS (no result)"
    else
        awk -v r="$1" -v m="$2" 'BEGIN { print (r >= m) ? "PASS" : "MISS" }'
    fi
}

curl_row() { # METRIC LG_KEY PEER_LABEL PEER PEER_KEY [MIN_RATIO]
    _lg=$(bench_get "$2")
    _pv=$(bench_get "$5")
    _min=${6:-}
    _lf=$(bench_fmt "$_lg")
    [ -z "$_lg" ] && _lf="no result"
    if [ -n "$_pv" ]; then
        _pf=$(bench_fmt "$_pv")
    elif bench_peer_ok "$4"; then
        _pf="no result (run failed, see log)"
    else
        _pf=$(bench_peer_reason "$4")
    fi
    # Paired rounds when there are some (the C peers), else the medians.
    _rat=$(bench_get "pair:$2/$5")
    [ -z "$_rat" ] && [ -n "$_lg" ] && [ -n "$_pv" ] && _rat=$(awk -v a="$_lg" -v b="$_pv" 'BEGIN { printf "%.6f", a / b }')
    _r1=$(bench_ratio "$_rat" 1)
    _r2=$(bench_ratio 1 "$_rat")
    _cl=$(bench_get "$2@cpu")
    _cp=$(bench_get "$5@cpu")
    _crat=$(bench_get "pair:$2@cpu/$5@cpu")
    [ -z "$_crat" ] && [ -n "$_cl" ] && [ -n "$_cp" ] && _crat=$(awk -v a="$_cl" -v b="$_cp" 'BEGIN { printf "%.6f", a / b }')
    _cc="—"
    [ -n "$_cl" ] && _cc="$(bench_fmt "$_cl") vs $(bench_fmt "$_cp")"
    [ -n "$_crat" ] && _cc="$_cc, libgreen/peer $(bench_ratio "$_crat" 1)"
    _tt="—"
    _v="—"
    if [ -n "$_min" ]; then
        _tt="≥ ${_min}× peer"
        if [ -z "$_pv" ] && [ -n "$_lg" ]; then
            _v="n/a: $_pf"
        else
            _v=$(curl_verdict "$_rat" "$_min")
        fi
        case $_v in MISS*) BENCH_MISSED=$((BENCH_MISSED + 1)) ;; esac
        if [ -n "$_crat" ]; then
            _cv=$(curl_verdict "$_crat" "$_min")
            case $_cv in MISS*) BENCH_MISSED_CPU=$((BENCH_MISSED_CPU + 1)) ;; esac
            _cc="$_cc, $_cv"
        fi
        echo "| $1 | $3 | $_lf vs $_pf | libgreen/peer $_r1 | $_tt | $_v | $_cc |" >>"$BENCH_SUMMARY"
    fi
    echo "| $1 | $_lf | $3 | $_pf | $_r1 | $_r2 | $_tt | $_v | $_cc |"
}

bench_table_head cpu
curl_row "GETs/s, 500 greenlets" curl_green_rps "raw curl_multi_socket_action loop on libev" rawmulti curl_raw_rps 0.9
curl_row "GETs/s, 500 greenlets" curl_green_rps "16 threads x curl_easy_perform" threads curl_threads_rps 1.5
curl_row "GETs/s, 500 greenlets" curl_green_rps "gevent + requests, 500 greenlets" gevent curl_gevent_rps
bench_row "client CPU µs per GET" curl_green_cpu_us "raw multi loop" rawmulti curl_raw_cpu_us
bench_row "client CPU µs per GET" curl_green_cpu_us "16 threads x curl_easy_perform" threads curl_threads_cpu_us
bench_row "client CPU µs per GET" curl_green_cpu_us "gevent + requests" gevent curl_gevent_cpu_us

# The second table: each client against the pool, no target.
ceiling_row() { # LABEL KEY
    _v=$(bench_get "curl_$2_rps")
    _c=$(bench_get "curl_$2_cpu_us")
    _p=$(bench_get "curl_threads_rps")
    _rat=$(bench_get "pair:curl_$2_rps/curl_threads_rps")
    echo "| $1 | $(bench_fmt "$_v") | $(bench_fmt "$_c") | $(bench_fmt "$_p") | $(bench_ratio "$_rat" 1) |"
}
bench_section "2. What libcurl allows: each client against the 16-thread pool, by transfers at once (no target)"
echo "| client | GETs/s | client CPU µs per GET | pool GETs/s | client/pool |"
echo "|---|---|---|---|---|"
ceiling_row "raw multi loop, $CONC handles (the floor of table 1)" raw
ceiling_row "libgreen, $CONC greenlets" green
ceiling_row "raw multi loop, $CEIL_CONC handles" raw$CEIL_CONC
ceiling_row "libgreen, $CEIL_CONC greenlets" green$CEIL_CONC
ceiling_row "libgreen, $CONC greenlets, green_curl_limit($CEIL_CONC)" limit$CEIL_CONC
_best=$(for _k in raw raw$CEIL_CONC; do bench_get "pair:curl_${_k}_rps/curl_threads_rps"; done | sort -g | tail -1)
echo
echo "The raw loop's best ratio to the pool here: $(bench_ratio "$_best" 1) (table 1 asks libgreen for 1.5)."

bench_finish
