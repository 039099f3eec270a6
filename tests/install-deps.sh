#!/bin/sh
# Installs the Debian packages the build and the tests need, when missing.
# Run by `make check`, `make run` and `make bench`; does nothing when all is
# there, and only says what is missing when it cannot install (not root, no
# apt-get).
set -u
need=""
[ -f /usr/include/ev.h ] || need="$need libev-dev"
[ -f /usr/include/check.h ] || need="$need check"
[ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || [ -n "$(ls /usr/include/*/curl/curl.h 2>/dev/null)" ] || need="$need libcurl4-openssl-dev"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
[ -f /usr/include/valgrind/valgrind.h ] || need="$need valgrind"
# Optional: the aarch64 switch test (cross compiler + qemu-user).
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need="$need gcc-aarch64-linux-gnu"
command -v qemu-aarch64 >/dev/null 2>&1 || need="$need qemu-user"
# The shim's tests: real servers and clients on loopback (nginx, PostgreSQL,
# Redis, curl, wget), the blocking client libraries they drive, Debian's
# python3 for the transparency scripts, and wrk for the HTTP benchmarks.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx-light"
[ -n "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" ] || need="$need postgresql"
[ -f /usr/include/postgresql/libpq-fe.h ] || need="$need libpq-dev"
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
[ -f /usr/include/hiredis/hiredis.h ] || need="$need libhiredis-dev"
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v wget >/dev/null 2>&1 || need="$need wget"
[ -x /usr/bin/python3 ] || need="$need python3"
for p in ${EXTRA_DEPS:-}; do need="$need $p"; done
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: installing$need"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $need; } >/tmp/libgreen-apt.log 2>&1; then
        echo "install-deps: apt-get failed; see /tmp/libgreen-apt.log" >&2
        tail -5 /tmp/libgreen-apt.log >&2
        exit 1
    fi
else
    echo "install-deps: missing$need (install them, or run as root on Debian)" >&2
fi
exit 0
