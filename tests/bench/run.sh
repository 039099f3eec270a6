#!/bin/sh
# Runs every benchmark suite (tests/bench/suite_*.sh, in name order) against
# the library in BUILD, after installing the peers that are missing.
#
#   sh tests/bench/run.sh BUILD          (what `make bench` runs)
#
# Peers come from Debian packages. As root, missing ones are installed with
# apt-get (one `apt-get update` first); a peer still missing after that is
# reported by every row that needs it as "skipped (not installed)".
#
# Environment: BENCH_CPU (CPU to pin to, default 0), BENCH_TIMEOUT (seconds
# per program run, default 600), BENCH_STRICT=1 (a missed target fails).
set -u
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$BUILD/bench"

# package: the test that tells it is installed
have_pkg() {
    case $1 in
        libboost-context-dev) [ -f /usr/include/boost/context/detail/fcontext.hpp ] && ls /usr/lib/*/libboost_context.so >/dev/null 2>&1 ;;
        libst-dev) [ -f /usr/include/st.h ] ;;
        golang-go) command -v go >/dev/null 2>&1 ;;
        python3-gevent) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import gevent, greenlet' 2>/dev/null ;;
        g++) command -v g++ >/dev/null 2>&1 ;;
        util-linux) command -v taskset >/dev/null 2>&1 ;;
        time) [ -x /usr/bin/time ] ;;
    esac
}

PEERS="libboost-context-dev libst-dev golang-go python3-gevent g++ util-linux time"
missing=""
for p in $PEERS; do have_pkg "$p" || missing="$missing $p"; done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bench: installing$missing"
        log=$BUILD/bench/apt.log
        export DEBIAN_FRONTEND=noninteractive
        if apt-get update -qq >"$log" 2>&1; then
            # All at once; if that fails (one package unavailable), one by one,
            # so that one missing package does not cost the others.
            # shellcheck disable=SC2086
            if ! apt-get install -y -qq --no-install-recommends $missing >>"$log" 2>&1; then
                for p in $missing; do
                    apt-get install -y -qq --no-install-recommends "$p" >>"$log" 2>&1 ||
                        echo "bench: could not install $p (see $log)"
                done
            fi
        else
            echo "bench: apt-get update failed (see $log)"
        fi
    else
        echo "bench: missing$missing (not root or no apt-get: not installing)"
    fi
    for p in $missing; do
        have_pkg "$p" || echo "bench: $p: skipped (not installed)"
    done
fi

# The suites share one summary, printed at the end.
BENCH_SUMMARY=$(cd "$BUILD/bench" && pwd)/summary.md
: >"$BENCH_SUMMARY"
export BENCH_SUMMARY

status=0
failed=""
t0=$(date +%s)
for suite in "$HERE"/suite_*.sh; do
    [ -f "$suite" ] || continue
    s0=$(date +%s)
    sh "$suite" "$BUILD"
    rc=$?
    echo "($(basename "$suite"): $(($(date +%s) - s0)) s)"
    if [ "$rc" != 0 ]; then
        status=1
        failed="$failed $(basename "$suite")(rc=$rc)"
    fi
done

. "$HERE/lib.sh"
bench_print_summary
echo
echo "bench: all suites in $(($(date +%s) - t0)) s${failed:+; failed:$failed}"
exit $status
