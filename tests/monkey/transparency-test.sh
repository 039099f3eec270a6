#!/bin/sh
# Transparency, byte for byte: real programs nobody here wrote (curl, wget,
# redis-cli, psql, python3 scripts, sleep) print the same stdout and stderr
# and exit with the same status with and without green-run, against a real
# nginx, redis-server and PostgreSQL started here on 127.0.0.1
# (tests/monkey/servers.sh). Each case also asserts the exit status it
# expects, so two identical failures (a server down) do not pass.
#
#   sh tests/monkey/transparency-test.sh BUILD
#
# green-run-test.sh covers env(1)'s behaviour, `ls`, a shell pipeline, and a
# python socketpair/select/getaddrinfo(127.0.0.1)/subprocess script; this
# check does not repeat those.
set -u
build=${1:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
case $build in /*) ;; *) build=$root/$build ;; esac
gr=$build/green-run
py=/usr/bin/python3
pyscript=$root/tests/monkey/transparency.py
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
ko() { fail=$((fail + 1)); echo "FAIL: $1"; }
finish() {
    echo "transparency: $pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit $?
}

. "$root/tests/monkey/servers.sh"

for f in "$gr" "$build/libgreen-monkey.so"; do
    [ -e "$f" ] || ko "$f is missing (make lib monkey)"
done
for p in curl wget redis-cli psql "$py"; do
    command -v "$p" >/dev/null 2>&1 || ko "$p is not installed (tests/install-deps.sh)"
done
[ "$fail" = 0 ] || finish

srv_init || { ko "cannot make a temporary directory"; finish; }
srv_start_nginx && ok "nginx serving $NGINX_URL" || ko "nginx did not start"
srv_start_redis && ok "redis-server on 127.0.0.1:$REDIS_PORT" || ko "redis-server did not start"
srv_start_pg && ok "PostgreSQL on 127.0.0.1:$PG_PORT" || ko "PostgreSQL did not start"
[ "$fail" = 0 ] || finish
srv_pick_port || { ko "no free port"; finish; }
closed=$SRV_PORT # nothing listens there: connections are refused
T=$SRV_DIR/cmp
mkdir -p "$T"

# Without that, everything below would compare a program with itself.
if "$gr" grep -q 'libgreen-monkey\.so' /proc/self/maps; then
    ok "green-run really loads libgreen-monkey.so into the program"
else
    ko "green-run does not load libgreen-monkey.so into the program"
fi

# NORM: a sed -E script applied to both runs' output, only for what a program
# prints that is inherently variable (a duration). Empty: byte for byte.
NORM=""

# same NAME STATUS CMD...: both runs exit with STATUS, and print the same
# stdout and stderr.
same() {
    _name=$1 _want=$2
    shift 2
    "$@" >"$T/a.out" 2>"$T/a.err" </dev/null
    _ra=$?
    "$gr" "$@" >"$T/b.out" 2>"$T/b.err" </dev/null
    _rb=$?
    if [ -n "$NORM" ]; then
        for _f in a.out a.err b.out b.err; do
            sed -E "$NORM" "$T/$_f" >"$T/$_f.n" && mv "$T/$_f.n" "$T/$_f"
        done
    fi
    _o=$(wc -c <"$T/a.out" | tr -d ' ')
    _e=$(wc -c <"$T/a.err" | tr -d ' ')
    if [ "$_ra" = "$_rb" ] && [ "$_ra" = "$_want" ] && cmp -s "$T/a.out" "$T/b.out" &&
        cmp -s "$T/a.err" "$T/b.err"; then
        ok "same: $_name (exit $_ra, $_o bytes of stdout, $_e of stderr)"
    else
        ko "same: $_name: exit $_ra without green-run, $_rb with it (expected $_want)"
        for _f in out err; do
            if ! cmp -s "$T/a.$_f" "$T/b.$_f"; then
                echo "  std$_f differs:"
                diff "$T/a.$_f" "$T/b.$_f" | head -10 | sed 's/^/    /'
            elif [ "$_ra" != "$_want" ]; then
                echo "  std$_f:"
                head -5 "$T/a.$_f" | sed 's/^/    /'
            fi
        done
    fi
}

U=$NGINX_URL
# curl
same "curl GET" 0 curl -sS "$U/hello.txt"
same "curl GET of 1 MiB to stdout" 0 curl -sS "$U/rand.bin"
same "curl -w status, size, type" 0 curl -sS -o /dev/null -w '%{http_code} %{size_download} %{content_type}\n' "$U/rand.bin"
same "curl GET of a 0.2 s slow page" 0 curl -sS "$U/slow?s=0.2&id=1"
same "curl -f 404" 22 curl -sSf "$U/missing"
same "curl POST to a static file (405)" 0 curl -sS -d 'a=1' "$U/hello.txt"
NORM='s/after [0-9]+ ms/after N ms/; s/after [0-9]+ milliseconds/after N milliseconds/'
same "curl connection refused (durations normalized)" 7 curl -sS "http://127.0.0.1:$closed/"
same "curl -m 0.3 timeout (durations normalized)" 28 curl -sS -m 0.3 "$U/slow?s=3&id=2"
NORM=""
# wget
same "wget -q -O -" 0 wget -q -O - "$U/hello.txt"
same "wget of 1 MiB to stdout" 0 wget -q -O - "$U/rand.bin"
same "wget 404" 8 wget -q -O - "$U/missing"
same "wget connection refused" 4 wget -q -O - "http://127.0.0.1:$closed/"
# redis-cli
R="redis-cli -h 127.0.0.1 -p $REDIS_PORT"
same "redis-cli PING" 0 $R PING
same "redis-cli SET" 0 $R SET transparency:key "some value"
same "redis-cli GET" 0 $R GET transparency:key
same "redis-cli DEL + RPUSH + LRANGE" 0 sh -c "$R DEL transparency:list >/dev/null; $R RPUSH transparency:list a b c; $R LRANGE transparency:list 0 -1"
same "redis-cli BLPOP timing out after 0.2 s" 0 $R BLPOP transparency:empty 0.2
same "redis-cli wrong command" 0 $R NOSUCHCOMMAND x
same "redis-cli connection refused" 1 redis-cli -h 127.0.0.1 -p "$closed" PING
# psql
P="psql -X -v ON_ERROR_STOP=1"
same "psql SELECT (unix socket)" 0 $P "$PG_CONNINFO" -c "select 1 + 1 as two, 'text' as t, now() > '2000-01-01' as recent"
same "psql SELECT of 2000 rows (TCP)" 0 $P "$PG_TCP_CONNINFO" -c "select g, md5(g::text) from generate_series(1, 2000) g"
same "psql pg_sleep(0.2)" 0 $P -At "$PG_TCP_CONNINFO" -c "select pg_sleep(0.2), 'slept'"
same "psql error" 1 $P "$PG_CONNINFO" -c "select no_such_column"
same "psql connection refused" 2 $P "host=127.0.0.1 port=$closed user=$PG_USER dbname=postgres" -c "select 1"
# python3
for m in sockets select sleep names subprocess signals; do
    same "python3: $m" 0 "$py" "$pyscript" "$m"
done
same "python3: http.client to nginx, raw redis, refused" 0 "$py" "$pyscript" servers "$NGINX_PORT" "$REDIS_PORT" "$closed"
# getent: glibc's resolver through NSS, as a C program calls it.
same "getent ahosts localhost" 0 getent ahosts localhost
# sleep 0.2 under green-run still sleeps 0.2 s (green-run-test.sh compares
# its output).
t0=$(date +%s%N)
"$gr" sleep 0.2
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
if [ "$rc" = 0 ] && [ "$ms" -ge 200 ] && [ "$ms" -lt 2000 ]; then
    ok "green-run sleep 0.2 sleeps ${ms} ms (0.2 s to 2 s)"
else
    ko "green-run sleep 0.2: exit $rc after $ms ms"
fi

finish
