# Real servers on loopback for the shim's checks and benchmark (sourced,
# POSIX sh): nginx, redis-server and PostgreSQL, each started from one
# temporary directory on a free 127.0.0.1 port and stopped on exit.
#
#   . tests/monkey/servers.sh
#   srv_init                  temp dir $SRV_DIR, cleanup trap (EXIT, INT, TERM, HUP)
#   srv_start_nginx [BIG]     $NGINX_PORT, $NGINX_URL; serves $SRV_DIR/www:
#                             /hello.txt, /rand.bin (1 MiB random), /big (a sparse
#                             file of BIG bytes, when given) and /slow?s=S&id=I,
#                             which answers "slow I\n" after S seconds, and /echo,
#                             which sends a POST's body (up to 4 MiB) back (echo module)
#   srv_start_redis           $REDIS_PORT
#   srv_start_pg              $PG_PORT, $PG_SOCKDIR, $PG_USER, $PG_CONNINFO (unix
#                             socket), $PG_TCP_CONNINFO (127.0.0.1)
#   srv_pick_port             $SRV_PORT: a free port, never one picked before (also
#                             the "connection refused" cases' port)
#   srv_stop_all              what the trap runs; also removes the paths listed
#                             in $SRV_RM (a caller's own temporary files)
#
# Each start function returns non-zero (with the server's log on stderr) when
# the server does not come up. SRV_PIN (e.g. "taskset -c 1") prefixes the
# server processes. As root, PostgreSQL runs as an unprivileged user
# (postgres if it exists, else nobody), since it refuses to run as root.

# shellcheck disable=SC2034 # the variables set here are the callers'

SRV_DIR=""
SRV_PIDS=""
SRV_PG_DATA=""
SRV_PG_USER=""
SRV_PORTS=""
SRV_RM=""
SRV_PIN=${SRV_PIN:-}

srv_init() {
    # In /tmp whatever TMPDIR says: PostgreSQL's unprivileged user must reach it.
    SRV_DIR=$(mktemp -d /tmp/green-servers.XXXXXX) || return 1
    chmod 755 "$SRV_DIR"
    trap srv_stop_all EXIT
    trap 'srv_stop_all; exit 130' INT
    trap 'srv_stop_all; exit 143' TERM
    trap 'srv_stop_all; exit 129' HUP
}

srv_stop_all() {
    if [ -n "$SRV_PG_DATA" ] && [ -f "$SRV_PG_DATA/postmaster.pid" ]; then
        srv_as_pg "$SRV_PG_BIN/pg_ctl" -D "$SRV_PG_DATA" -m immediate -w stop >/dev/null 2>&1
    fi
    SRV_PG_DATA=""
    for _p in $SRV_PIDS; do
        kill "$_p" 2>/dev/null
    done
    for _p in $SRV_PIDS; do
        wait "$_p" 2>/dev/null
    done
    SRV_PIDS=""
    if [ -n "$SRV_DIR" ]; then
        rm -rf "$SRV_DIR"
    fi
    SRV_DIR=""
    for _p in $SRV_RM; do
        rm -rf "$_p"
    done
    SRV_RM=""
}

# A free TCP port on 127.0.0.1 in $SRV_PORT, below Linux's ephemeral range
# (so that no client's own port takes it between now and the server's bind),
# never one picked before in this run.
srv_pick_port() {
    _i=0
    while [ $_i -lt 200 ]; do
        _port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 12000))
        case " $SRV_PORTS " in *" $_port "*) _i=$((_i + 1)); continue ;; esac
        if /usr/bin/python3 -c "
import socket, sys
s = socket.socket()
try:
    s.bind(('127.0.0.1', $_port))
except OSError:
    sys.exit(1)" 2>/dev/null; then
            SRV_PORTS="$SRV_PORTS $_port"
            SRV_PORT=$_port
            return 0
        fi
        _i=$((_i + 1))
    done
    return 1
}

# Polls CMD (up to ~10 s) while PID lives.
srv_wait_ready() { # PID CMD...
    _pid=$1
    shift
    _i=0
    while [ $_i -lt 200 ]; do
        kill -0 "$_pid" 2>/dev/null || return 1
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.05
        _i=$((_i + 1))
    done
    return 1
}

# Keeps the server PID (stopped by srv_stop_all) once CMD succeeds; stops it
# and fails if it dies or does not get ready.
srv_keep_when_ready() { # PID CMD...
    if srv_wait_ready "$@"; then
        SRV_PIDS="$SRV_PIDS $1"
        return 0
    fi
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    return 1
}

# ---------------------------------------------------------------------------
# nginx (Debian's nginx-light, with its echo module for the slow endpoint)
# ---------------------------------------------------------------------------
srv_nginx_bin() {
    for _b in /usr/sbin/nginx $(command -v nginx 2>/dev/null); do
        [ -x "$_b" ] && { echo "$_b"; return 0; }
    done
    return 1
}

srv_start_nginx() { # [BIG_BYTES]
    _nginx=$(srv_nginx_bin) || { echo "nginx is not installed" >&2; return 1; }
    _echo_mod=""
    for _m in /usr/lib/nginx/modules/ngx_http_echo_module.so /usr/share/nginx/modules/ngx_http_echo_module.so; do
        [ -f "$_m" ] && { _echo_mod=$_m; break; }
    done
    _d=$SRV_DIR/nginx
    mkdir -p "$_d" "$SRV_DIR/www"
    printf 'Hello from nginx\n' >"$SRV_DIR/www/hello.txt"
    head -c 1048576 /dev/urandom >"$SRV_DIR/www/rand.bin"
    [ -n "${1:-}" ] && truncate -s "$1" "$SRV_DIR/www/big"
    _try=0
    while [ $_try -lt 3 ]; do
        srv_pick_port || return 1
        NGINX_PORT=$SRV_PORT
        {
            [ -n "$_echo_mod" ] && echo "load_module $_echo_mod;"
            cat <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $_d/nginx.pid;
error_log $_d/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    client_body_temp_path $_d/client_body;
    proxy_temp_path $_d/proxy;
    fastcgi_temp_path $_d/fastcgi;
    uwsgi_temp_path $_d/uwsgi;
    scgi_temp_path $_d/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=1024;
        root $SRV_DIR/www;
EOF
            [ -n "$_echo_mod" ] && cat <<'EOF'
        location = /slow {
            default_type text/plain;
            echo_sleep $arg_s;
            echo "slow $arg_id";
        }
        location = /echo {
            client_max_body_size 4m;
            client_body_buffer_size 4m;
            echo_read_request_body;
            echo_request_body;
        }
EOF
            echo "    }"
            echo "}"
        } >"$_d/nginx.conf"
        # shellcheck disable=SC2086
        $SRV_PIN "$_nginx" -p "$_d" -c "$_d/nginx.conf" -e "$_d/error.log" >"$_d/nginx.out" 2>&1 &
        _pid=$!
        NGINX_URL="http://127.0.0.1:$NGINX_PORT"
        srv_keep_when_ready "$_pid" curl -sf -o /dev/null "$NGINX_URL/hello.txt" && return 0
        _try=$((_try + 1))
    done
    echo "nginx did not start:" >&2
    tail -5 "$_d/error.log" "$_d/nginx.out" >&2 2>/dev/null
    return 1
}

# ---------------------------------------------------------------------------
# redis-server
# ---------------------------------------------------------------------------
srv_start_redis() {
    command -v redis-server >/dev/null 2>&1 || { echo "redis-server is not installed" >&2; return 1; }
    _d=$SRV_DIR/redis
    mkdir -p "$_d"
    _try=0
    while [ $_try -lt 3 ]; do
        srv_pick_port || return 1
        REDIS_PORT=$SRV_PORT
        # shellcheck disable=SC2086
        $SRV_PIN redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
            --daemonize no --dir "$_d" --logfile "" --protected-mode yes --maxclients 1000 \
            >"$_d/redis.log" 2>&1 &
        _pid=$!
        srv_keep_when_ready "$_pid" srv_redis_pong && return 0
        _try=$((_try + 1))
    done
    echo "redis-server did not start:" >&2
    tail -5 "$_d/redis.log" >&2
    return 1
}

srv_redis_pong() {
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

# ---------------------------------------------------------------------------
# PostgreSQL (Debian's, initdb into the temp dir)
# ---------------------------------------------------------------------------
# Runs a PostgreSQL program as the server's user, pinned by SRV_PIN.
srv_as_pg() {
    if [ -n "$SRV_PG_USER" ]; then
        # shellcheck disable=SC2086
        $SRV_PIN runuser -u "$SRV_PG_USER" -- "$@"
    else
        # shellcheck disable=SC2086
        $SRV_PIN "$@"
    fi
}

srv_start_pg() {
    SRV_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -x "$SRV_PG_BIN/initdb" ] || { echo "PostgreSQL (initdb) is not installed" >&2; return 1; }
    SRV_PG_USER=""
    if [ "$(id -u)" = 0 ]; then
        SRV_PG_USER=nobody
        getent passwd postgres >/dev/null 2>&1 && SRV_PG_USER=postgres
    fi
    _d=$SRV_DIR/pg
    mkdir -p "$_d"
    [ -n "$SRV_PG_USER" ] && chown "$SRV_PG_USER" "$_d"
    PG_USER=green
    if ! srv_as_pg "$SRV_PG_BIN/initdb" -D "$_d/data" -U "$PG_USER" -A trust --no-sync -E UTF8 \
        --locale=C >"$_d/initdb.log" 2>&1; then
        echo "initdb failed:" >&2
        tail -5 "$_d/initdb.log" >&2
        return 1
    fi
    PG_SOCKDIR=$_d
    _try=0
    while [ $_try -lt 3 ]; do
        srv_pick_port || return 1
        PG_PORT=$SRV_PORT
        if srv_as_pg "$SRV_PG_BIN/pg_ctl" -D "$_d/data" -l "$_d/log" -w -t 30 \
            -o "-k $_d -p $PG_PORT -h 127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=32MB" \
            start >"$_d/pg_ctl.out" 2>&1; then
            SRV_PG_DATA=$_d/data
            PG_CONNINFO="host=$_d port=$PG_PORT user=$PG_USER dbname=postgres"
            PG_TCP_CONNINFO="host=127.0.0.1 port=$PG_PORT user=$PG_USER dbname=postgres"
            return 0
        fi
        _try=$((_try + 1))
    done
    echo "PostgreSQL did not start:" >&2
    tail -5 "$_d/log" "$_d/pg_ctl.out" >&2 2>/dev/null
    return 1
}
