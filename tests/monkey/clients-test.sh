#!/bin/sh
# Blocking client libraries become concurrent under the monkey shim, unchanged:
# tests/monkey/clients.c runs 100 greenlets of libpq (PQconnectdb + PQexec
# pg_sleep), 100 of hiredis (SET/GET/BLPOP) and 50 of libcurl's
# curl_easy_perform against a real PostgreSQL, redis-server and nginx started
# here on 127.0.0.1 (tests/monkey/servers.sh), and checks every reply and the
# elapsed times that prove the calls overlapped; then that errors and
# timeouts (refused connections, a query error, hiredis's SO_RCVTIMEO,
# curl's timeout, a 404, the resolver) come back from greenlets exactly as
# without a hub, on time, overlapping.
#
#   sh tests/monkey/clients-test.sh BUILD
#
# The program runs linked with -lgreen-monkey (the link mode), then built
# without the shim and started by green-run (LD_PRELOAD), and once without
# the shim at all as the control: there the same greenlets serialize.
set -u
build=${1:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
case $build in /*) ;; *) build=$root/$build ;; esac
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
ko() { fail=$((fail + 1)); echo "FAIL: $1"; }
finish() {
    echo "clients: $pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit $?
}

. "$root/tests/monkey/servers.sh"

for f in libgreen.so libgreen-monkey.so green-run; do
    [ -e "$build/$f" ] || ko "$build/$f is missing (make lib monkey)"
done
[ -f /usr/include/postgresql/libpq-fe.h ] || ko "libpq-fe.h is missing (libpq-dev)"
[ -f /usr/include/hiredis/hiredis.h ] || ko "hiredis/hiredis.h is missing (libhiredis-dev)"
[ "$fail" = 0 ] || finish

srv_init || { ko "cannot make a temporary directory"; finish; }

# The same source three ways: with the shim linked in, and without it (for
# green-run's LD_PRELOAD, and for the control run). Built under BUILD rather
# than /tmp, which may be mounted noexec; removed on exit.
bin=$(mktemp -d "$build/monkey-clients.XXXXXX") || { ko "cannot make a directory in $build"; finish; }
SRV_RM=$bin
cc_clients() { # OUT SHIM_LIBS...
    _out=$1
    shift
    # shellcheck disable=SC2046
    ${CC:-cc} -std=gnu11 -Wall -Wextra -O2 -g -I"$root/include" "$root/tests/monkey/clients.c" \
        -o "$_out" -L"$build" -Wl,--no-as-needed "$@" -lgreen -Wl,--as-needed -Wl,-rpath,"$build" \
        $(pkg-config --cflags --libs libpq 2>/dev/null || echo -I/usr/include/postgresql -lpq) \
        -lhiredis -lcurl >"$bin/cc.log" 2>&1
}
if cc_clients "$bin/clients-link" -lgreen-monkey && cc_clients "$bin/clients-plain"; then
    if ldd "$bin/clients-link" | grep -q libgreen-monkey.so && ! ldd "$bin/clients-plain" | grep -q libgreen-monkey.so; then
        ok "clients.c built twice: linked with -lgreen-monkey, and without the shim"
    else
        ko "clients-link does not load libgreen-monkey.so (or clients-plain does)"
    fi
else
    ko "clients.c does not build:"
    sed 's/^/    /' "$bin/cc.log"
    finish
fi

srv_start_nginx && ok "nginx serving $NGINX_URL" || ko "nginx did not start"
srv_start_redis && ok "redis-server on 127.0.0.1:$REDIS_PORT" || ko "redis-server did not start"
srv_start_pg && ok "PostgreSQL on $PG_SOCKDIR and 127.0.0.1:$PG_PORT" || ko "PostgreSQL did not start"
[ "$fail" = 0 ] || finish
srv_pick_port || { ko "no free port"; finish; }
closed=$SRV_PORT # nothing listens there: connections are refused

# Runs one clients invocation and counts its "ok:"/"FAIL:" lines; a crash or
# a hang (timeout) is one failure more.
run() { # CMD...
    _out=$SRV_DIR/run.out
    timeout 60 "$@" >"$_out" 2>&1
    _rc=$?
    cat "$_out"
    _p=$(grep -c '^ok: ' "$_out")
    _f=$(grep -c '^FAIL: ' "$_out")
    pass=$((pass + _p)); fail=$((fail + _f))
    if [ "$_rc" != 0 ] && [ "$_f" = 0 ]; then
        ko "$(basename "$1") ${2:-} ${3:-} exited with status $_rc$([ "$_rc" = 124 ] && echo ' (timeout 60 s)')"
    elif [ "$_rc" = 0 ] && [ "$_p" = 0 ]; then
        ko "$(basename "$1") ${2:-} ${3:-} printed no check"
    fi
}

rand=$SRV_DIR/www/rand.bin
# Link mode: libpq over the unix socket, the preloaded run over TCP.
run "$bin/clients-link" link pg "$PG_CONNINFO" 100 0.5 concurrent
run "$bin/clients-link" link redis "$REDIS_PORT" 100
run "$bin/clients-link" link curl "$NGINX_URL" 50 0.5 "$rand"
run "$bin/clients-link" link errors "$NGINX_URL" "$REDIS_PORT" "$PG_PORT" "$closed"
run "$build/green-run" "$bin/clients-plain" green-run pg "$PG_TCP_CONNINFO" 100 0.5 concurrent
run "$build/green-run" "$bin/clients-plain" green-run redis "$REDIS_PORT" 100
run "$build/green-run" "$bin/clients-plain" green-run curl "$NGINX_URL" 50 0.5 "$rand"
run "$build/green-run" "$bin/clients-plain" green-run errors "$NGINX_URL" "$REDIS_PORT" "$PG_PORT" "$closed"
# The control: without the shim, 4 greenlets' PQexec calls block in turn.
run "$bin/clients-plain" no-shim pg "$PG_CONNINFO" 4 0.5 serial

finish
